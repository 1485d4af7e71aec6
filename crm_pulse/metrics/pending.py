"""Contributions whose time has not come yet: the open window ends at the as-of time.

A record counts in a calendar window only once its time has passed (metrics-spec section 6):
with ``--as-of 2026-02-15`` a deal won on 2026-03-05 is in no window yet, so a quarter is always
the sum of its reported months. Buckets hold every contribution; this ledger remembers, per
measure and group, the contributions dated after the engine's *horizon* (the latest time it was
told about, see :meth:`.Engine.advance`), and a read at ``as_of`` takes out those still after
``as_of``::

    ("f", measure, group) -> {time: {(slot, distinct value): [delta, dn]}}

Future-dated contributions are few (a close date set ahead), so the ledger stays small; entries
whose time came before the last reported advance are dropped when their ledger is next written
(not those that only passed the horizon: a successor must still find them due). A heap of the
ledger's times tells :meth:`.Engine.advance` which buckets time moves, so a live tick costs what
became due, not what is stored. Reading at an ``as_of`` before the horizon is approximate (the
ledger no longer knows what lay between); replay sets the horizon to its as-of before applying.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import Any

from .measures import Group
from .state import StateStore

__all__ = ["Due", "PendingLedger"]

Due = tuple[int, str, int, Group]
"""(time, "f" ledger | "a" active interval, measure, group): something that becomes due."""


class PendingLedger:
    """The future part of the engine's buckets, kept in its state store."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.horizon: int | None = None  # None: nothing has passed yet, everything is pending
        # the horizon up to which what came due was handed out (advance with due=True); only
        # entries up to it may be dropped: a Faust worker moves the horizon on every batch and
        # reports on its tick, and a successor must still find what came due in between
        self.reported: int | None = None
        self._heap: list[Due] | None = None  # built from the store on the first advance

    def pending_after(self, t: int) -> bool:
        """Whether a contribution at ``t`` goes to the ledger (as well as to its buckets)."""
        return self.horizon is None or t > self.horizon

    def add(
        self, index: int, group: Group, t: int, slot: Any, dv: Any, delta: int, dn: int
    ) -> None:
        key = ("f", index, group)
        store = self.store
        ledger: dict[int, dict[Any, list[int]]] = store.get(key) or {}
        at = ledger.get(t)
        if at is None:
            at = ledger[t] = {}
        cell = at.get((slot, dv)) or [0, 0]
        cell[0] += delta
        cell[1] += dn
        if cell[0] or cell[1]:
            at[(slot, dv)] = cell
        else:
            at.pop((slot, dv), None)
            if not at:
                del ledger[t]
        reported = self.reported
        if reported is not None:
            for passed in [x for x in ledger if x <= reported]:
                del ledger[passed]
        if ledger:
            store.put(key, ledger)
        else:
            store.delete(key)
        if dn > 0:
            self.watch(t, "f", index, group)

    def watch(self, t: int, tag: str, index: int, group: Group) -> None:
        """Remember that something of (measure, group) changes when time reaches ``t``."""
        if self._heap is not None and (self.horizon is None or t > self.horizon):
            heapq.heappush(self._heap, (t, tag, index, group))
        # at or before the horizon: the batch applying it reports it (or it is in the heap)

    def entries(
        self, index: int, group: Group, start: int, end: int, as_of: int
    ) -> Iterator[tuple[int, Any, Any, int, int]]:
        """(time, slot, distinct value, delta, dn) of contributions in [start, end) after
        ``as_of``."""
        ledger = self.store.get(("f", index, group))
        if not ledger:
            return
        lo = max(start, as_of + 1)
        for t, cells in ledger.items():
            if lo <= t < end:
                for (slot, dv), (delta, dn) in cells.items():
                    yield t, slot, dv, delta, dn

    def advance(self, now: int, scan: Callable[[], list[Due]], *, due: bool = True) -> list[Due]:
        """Move the horizon to ``now`` (never back); what became due since, oldest first.

        ``scan`` lists every watched time in the store (the heap's first build, after a start or
        a rebalance). ``due=False`` moves the horizon only: what became due is returned by the
        next call that asks for it."""
        if self._heap is None:  # what was due by the horizon was reported before
            self._heap = [d for d in scan() if self.reported is None or d[0] > self.reported]
            heapq.heapify(self._heap)
        if self.horizon is None or now > self.horizon:
            self.horizon = now
        if not due:
            return []
        if self.reported is None or now > self.reported:
            self.reported = now
        heap = self._heap
        out: list[Due] = []
        while heap and heap[0][0] <= now:
            item = heapq.heappop(heap)
            if not out or out[-1] != item:
                out.append(item)
        return out

    def resume(self, horizon: int) -> None:
        """Continue from a horizon reached, and reported, before a restart (kept by the
        runtime with the state)."""
        if self.horizon is None or horizon > self.horizon:
            self.horizon = horizon
        if self.reported is None or horizon > self.reported:
            self.reported = horizon

    def forget(self) -> None:
        """Rebuild the heap from the store on the next advance (the store's content moved)."""
        self._heap = None
