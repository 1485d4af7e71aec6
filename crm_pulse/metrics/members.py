"""Buckets that keep their members, and the reads over them (the engine's less common shapes).

Most measures are counts and sums, kept as one number per bucket. These keep what they are
made of, because the value cannot be updated as a number:

    ("p", measure, group, month)   -> {value: count}            percentile multisets
    ("pd", measure, group, day)    -> {(time, value): count}    ... per day (days, weeks, rolling)
    ("dc", measure, group, day)    -> {(slot, value): weight}   distinct values and window
                                                                conditions, for rolling windows
    ("pr", measure, group)         -> {(slot, value): weight}   period records (rolling windows)
    ("cs", measure, group, window) -> {value: count}            a distinct bucket's values
                                                                ('among' checks each one)
    ("ai", measure, group, id)     -> {(start, end): count}     an 'active' member's intervals

Writes go through :func:`count_in`; the functions below read. Nothing here marks buckets as
moved: the engine does that.
"""

from __future__ import annotations

from typing import Any

from .calendar import DAY_MS, FINE_KINDS, Calendar, Window
from .measures import CompiledMeasure, Group
from .pending import PendingLedger
from .state import Key, StateStore

__all__ = ["among_count", "count_in", "multiset", "rolling_detail", "rolling_periods"]

_MONTHS_PER = {"month": 1, "quarter": 3, "year": 12}


def count_in(store: StateStore, key: Key, item: Any, delta: int) -> None:
    """Add ``delta`` to ``item``'s count in the dict at ``key`` (gone at 0)."""
    counts = store.get(key) or {}
    n = counts.get(item, 0) + delta
    if n:
        counts[item] = n
    else:
        counts.pop(item, None)
    if counts:
        store.put(key, counts)
    else:
        store.delete(key)


def multiset(
    store: StateStore,
    calendar: Calendar,
    pending: PendingLedger,
    m: CompiledMeasure,
    group: Group,
    window: Window,
    as_of: int,
) -> dict[int, int]:
    """The multiset {value: count} of a percentile measure in a window at ``as_of``."""
    out: dict[int, int] = {}
    kind = window.spec.kind
    if kind == "rolling" or kind in FINE_KINDS:  # (lo, hi]: after lo, up to hi
        if kind == "rolling":
            lo, hi = as_of - window.spec.days * DAY_MS, as_of
        else:
            start, end = calendar.bounds(window)
            lo, hi = start - 1, min(end - 1, as_of)
        for day in range((lo + 1) // DAY_MS, hi // DAY_MS + 1):
            for (t, value), n in (store.get(("pd", m.index, group, day)) or {}).items():
                if lo < t <= hi:
                    out[value] = out.get(value, 0) + n
        return out
    first = calendar.first_month(kind, window.index)
    for month in range(first, first + _MONTHS_PER[kind]):
        for value, n in (store.get(("p", m.index, group, month)) or {}).items():
            out[value] = out.get(value, 0) + n
    start, end = calendar.bounds(window)
    for _t, _slot, value, delta, _dn in pending.entries(m.index, group, start, end, as_of):
        out[value] = out.get(value, 0) - delta  # not yet
    return out


def _holds(m: CompiledMeasure, slot: Any, lo: int, hi: int) -> bool:
    return all(c.holds(a, lo, hi) for c, a in zip(m.window_conds, slot[1], strict=True))


def _day_cells(
    store: StateStore, m: CompiledMeasure, group: Group, lo: int, hi: int
) -> tuple[int, dict[Any, int]]:
    """Sum and per-value weights of the contributions in (lo, hi] from the ``dc`` day cells."""
    anchored = bool(m.window_conds)
    total = 0
    seen: dict[Any, int] = {}
    for day in range((lo + 1) // DAY_MS, hi // DAY_MS + 1):
        for (slot, dv), weight in (store.get(("dc", m.index, group, day)) or {}).items():
            t = slot[0] if anchored else slot
            if not lo < t <= hi or (anchored and not _holds(m, slot, lo, hi)):
                continue
            if dv is None:
                total += weight
            else:
                seen[dv] = seen.get(dv, 0) + weight
    return total, seen


def rolling_detail(store: StateStore, m: CompiledMeasure, group: Group, lo: int, hi: int) -> int:
    """A distinct count or a window-conditioned sum over (lo, hi]."""
    total, seen = _day_cells(store, m, group, lo, hi)
    return total + sum(1 for n in seen.values() if n >= m.threshold)


def rolling_periods(
    store: StateStore, calendar: Calendar, m: CompiledMeasure, group: Group, lo: int, hi: int
) -> int:
    """Period records whose whole period lies in [lo, hi] (spend of a rolling window)."""
    total = 0
    seen: dict[Any, int] = {}
    for ((kind, day), dv), weight in (store.get(("pr", m.index, group)) or {}).items():
        start, end = calendar.period_span(kind, day)
        if lo <= start and end <= hi:
            if dv is None:
                total += weight
            else:
                seen[dv] = seen.get(dv, 0) + weight
    return total + sum(1 for n in seen.values() if n >= m.threshold)


def _member(store: StateStore, m: CompiledMeasure, group: Group, record_id: Any, t: int) -> bool:
    """Whether the active measure ``m`` counts the record ``record_id`` at ``t``."""
    intervals = store.get(("ai", m.index, group, record_id)) or {}
    return any(
        n > 0 and start < t and (end is None or end >= t) for (start, end), n in intervals.items()
    )


def among_count(
    store: StateStore,
    calendar: Calendar,
    pending: PendingLedger,
    m: CompiledMeasure,
    group: Group,
    window: Window,
    as_of: int,
) -> int:
    """A distinct count narrowed to the members of ``m.among`` at its time of the window."""
    from .report import window_end

    among = m.among
    assert among is not None and among.definition.active is not None
    start, end = window_end(calendar, window, as_of)
    t = start if among.definition.active.when == "window_start" else end
    if window.spec.kind == "rolling":
        counts = _day_cells(store, m, group, start, end)[1]
    else:
        counts = dict(store.get(("cs", m.index, group, (window.spec.kind, window.index))) or {})
        w_start, w_end = calendar.bounds(window)
        for _t, _slot, dv, delta, _dn in pending.entries(m.index, group, w_start, w_end, as_of):
            counts[dv] = counts.get(dv, 0) - delta  # not yet
    k = m.threshold
    return sum(1 for dv, n in counts.items() if n >= k and _member(store, among, group, dv, t))
