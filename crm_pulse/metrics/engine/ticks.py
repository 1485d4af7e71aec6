"""Time advance: contributions dated in the future count once time reaches them; the marks of
which buckets moved since the last :meth:`~.outputs.Outputs.changes`."""

from __future__ import annotations

from collections.abc import Collection

from ..measures import Group
from ..pending import Due
from .core import _BY_MONTH, EngineCore


class Ticks(EngineCore):
    """Time advancing: what came due, and the record of which buckets moved."""

    def advance(self, now: int, *, mark_due: bool = True) -> int:
        """Time has reached ``now``: contributions dated up to it count from now on.

        Marks the buckets whose future-dated contributions (or ``active`` interval ends) became
        due, so the next :meth:`changes` reports their values; returns how many came due. A
        runtime calls it before applying a batch and on its tick; replay once, with its as-of,
        before applying anything. The horizon never moves back.

        ``mark_due=False`` moves the horizon only (a Faust batch, whose values must name only
        its own partition's groups); the next call without it marks what came due meanwhile.
        """
        due = self.pending.advance(now, self._watched, due=mark_due)
        dirty = self._dirty.add
        for t, tag, index, group in due:
            month = self._month_of(t)
            if tag == "a":
                dirty(("a", index, group, ("active", month)))
            else:
                if self._place.get(index) in _BY_MONTH:
                    wkeys: tuple[tuple[str, int], ...] = (("month", month),)
                else:
                    wkeys = self._month_wkeys.get(month) or self._wkeys_of(month)
                for wkey in wkeys + (self._fine_keys(t) if self._fine else ()):
                    dirty(("b", index, group, wkey))
        return len(due)

    @property
    def horizon(self) -> int | None:
        """The latest time :meth:`advance` was given (None: none yet)."""
        return self.pending.horizon

    def resume(self, horizon: int) -> None:
        """Continue from the horizon of a previous run (things due by it were reported then)."""
        self.pending.resume(horizon)

    def forget_due(self) -> None:
        """The store's content changed under the engine (a rebalance): find the future-dated
        contributions again on the next :meth:`advance`."""
        self.pending.forget()
        self._live_groups = None

    def _watched(self) -> list[Due]:
        out: list[Due] = []
        for key, value in self.store.items():
            if key[0] == "f":
                out.extend((t, "f", key[1], key[2]) for t in value)
            elif key[0] == "at":
                out.extend((t, "a", key[1], key[2]) for t in value)
        return out

    def touched(self, measures: Collection[int]) -> set[tuple[int, Group]]:
        """(measure, group) of the buckets of ``measures`` touched since the last
        :meth:`changes` (call it before that): whose values an event or :meth:`advance`
        may have moved."""
        return {(index, group) for _tag, index, group, _w in self._dirty if index in measures}

    def forget_changes(self) -> None:
        """Forget which buckets moved since :meth:`changes` (the caller rolled its state back)."""
        self._dirty.clear()
        self._live_groups = None  # built again from the store on the next read
