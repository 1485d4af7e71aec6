"""When a rolling window's value can next change by time alone, for every kind of measure.

A rolling window ``(as_of - days, as_of]`` slides with the clock, so a value over it moves without
any event. A runtime that writes rolling values keeps its groups indexed by the earliest time at
which that can happen (:func:`next_change`), so that a tick evaluates only the groups whose value
can have moved instead of every group of every rolling rule. What moves a value, per kind:

* counts, sums, percentiles and distinct counts placed by ``at:`` (also ``stays``): a
  contribution leaves the window when its time passes the window's start (time + length), a
  future-dated one enters at its time (:meth:`Engine.advance` reports those too). Exact times
  come from the engine's day entries (``"d"`` with its hour dicts ``"dh"`` and older day dicts
  ``"dm"``, ``"dc"`` for distinct values, ``"pd"`` for percentiles; layout in :mod:`.engine`);
* window conditions (``customer_since: {lt: window.start}``): as above, and a condition flips
  when the window's bound it names passes the compared field's value (each contribution in the
  window is checked);
* ``period: {match: within}`` records (spend): a period enters once its end has passed and
  leaves once the window's start passes its start (every period record of the group is read,
  as the value itself reads them);
* ``active`` intervals: the count at the window's start (or end) changes when that point passes
  the next interval start or end (``"am"``/``"at"`` entries);
* ``among``: a distinct count's contributions as above, and each counted value's membership of
  the ``active`` measure changes when the point passes one of its interval's ends (``"ai"``).

Snapshots (``current``) have no rolling window. Every time is exact or early, never late: an
early one only costs an evaluation that finds the same value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .calendar import DAY_MS, Calendar
from .measures import CompiledMeasure, Group
from .state import StateStore

__all__ = ["next_change", "watched_measures"]

HOUR_MS = DAY_MS // 24


def watched_measures(m: CompiledMeasure) -> tuple[int, ...]:
    """The measures whose buckets, when a batch touches them, can move ``m``'s value: ``m``
    itself and, for an ``among`` count, the ``active`` measure its members come from."""
    return (m.index,) if m.among is None else (m.index, m.among.index)


def next_change(
    store: StateStore,
    calendar: Calendar,
    m: CompiledMeasure,
    group: Group,
    days: int,
    as_of: int,
) -> int | None:
    """The earliest time after ``as_of`` at which ``m``'s value for ``group`` over a rolling
    window of ``days`` days can change by time alone, as the state holds now (None: never, until
    an event or :meth:`Engine.advance` touches the group)."""
    span = days * DAY_MS
    lo = as_of - span
    if m.placement == "active":
        return _active_next(store, calendar, m, group, span, as_of)
    if m.placement == "period":
        return _period_next(store, calendar, m, group, span, as_of)
    if m.among is not None:
        return _among_next(store, m, group, span, as_of)
    if m.window_conds:
        return _anchored_next(store, m, group, span, as_of)
    first = _first_after(store, m, group, lo, as_of // DAY_MS)
    if first is None:
        return None
    return first + span if first <= as_of else first


def _later(candidates: Iterable[int], as_of: int) -> int | None:
    found: int | None = None
    for t in candidates:
        if t > as_of and (found is None or t < found):
            found = t
    return found


def _first_after(
    store: StateStore, m: CompiledMeasure, group: Group, lo: int, last_day: int
) -> int | None:
    """The earliest contribution time after ``lo``, looking up to ``last_day`` (included):
    nothing dated after the window's start leaves; what is dated after ``last_day`` enters when
    :meth:`Engine.advance` reports it."""
    get = store.get
    mi = m.index
    for day in range((lo + 1) // DAY_MS, last_day + 1):
        if m.percentile is not None:
            found = _min_after((t for t, _v in get(("pd", mi, group, day)) or ()), lo)
        elif m.detailed_days:
            found = _min_after((slot for slot, _dv in get(("dc", mi, group, day)) or ()), lo)
        else:
            if get(("d", mi, group, day)) is None:
                continue
            found = _min_after(get(("dm", mi, group, day)) or (), lo)
            for hour in range(max(day * 24, lo // HOUR_MS), day * 24 + 24):
                times = get(("dh", mi, group, hour))
                if times:
                    t = _min_after(times, lo)
                    if t is not None and (found is None or t < found):
                        found = t
                if found is not None and found < (hour + 1) * HOUR_MS:
                    break  # later hours hold later times
        if found is not None:
            return found
    return None


def _min_after(times: Iterable[Any], lo: int) -> int | None:
    found: int | None = None
    for t in times:
        if t > lo and (found is None or t < found):
            found = t
    return found


def _anchored_next(
    store: StateStore, m: CompiledMeasure, group: Group, span: int, as_of: int
) -> int | None:
    """Window conditions: each contribution after the window's start leaves at its time + the
    length (or enters at its time), and each of its conditions flips when the bound it is
    compared with passes the field's value (at that value, or one ms later for a strict one)."""
    lo = as_of - span
    shifts = tuple(span if c.ref == "start" else 0 for c in m.window_conds)
    candidates: list[int] = []
    for day in range((lo + 1) // DAY_MS, as_of // DAY_MS + 1):
        for slot, _dv in store.get(("dc", m.index, group, day)) or ():
            t, anchors = slot
            if t <= lo:
                continue
            candidates.append(t + span if t <= as_of else t)
            for a, shift in zip(anchors, shifts, strict=True):
                if isinstance(a, int) and not isinstance(a, bool):
                    candidates.append(a + shift)
                    candidates.append(a + shift + 1)
    return _later(candidates, as_of)


def _period_next(
    store: StateStore, calendar: Calendar, m: CompiledMeasure, group: Group, span: int, as_of: int
) -> int | None:
    """Period records count while their whole period lies in [as_of - span, as_of]: one enters
    when ``as_of`` reaches its end, leaves when ``as_of - span`` passes its start."""
    candidates: list[int] = []
    for ((kind, day), _dv), _weight in (store.get(("pr", m.index, group)) or {}).items():
        start, end = calendar.period_span(kind, day)
        candidates.append(end)
        candidates.append(start + span + 1)
    return _later(candidates, as_of)


def _point_shift(m: CompiledMeasure, span: int) -> int:
    """How far ``as_of`` is ahead of the point an ``active`` measure is read at."""
    active = m.definition.active
    assert active is not None
    return span if active.when == "window_start" else 0


def _active_next(
    store: StateStore, calendar: Calendar, m: CompiledMeasure, group: Group, span: int, as_of: int
) -> int | None:
    """The count of intervals (start, end] holding the point changes when the point passes the
    next start or end at or after it (one ms after it)."""
    shift = _point_shift(m, span)
    point = as_of - shift
    months = store.get(("am", m.index, group))
    if not months:
        return None
    first = calendar.month_of(point)
    for month in sorted(mo for mo in months if mo >= first):
        times = store.get(("at", m.index, group, month)) or {}
        found = _later((t + 1 + shift for t in times), as_of)
        if found is not None:
            return found
    return None


def _among_next(
    store: StateStore, m: CompiledMeasure, group: Group, span: int, as_of: int
) -> int | None:
    """A distinct count narrowed to the members of an ``active`` measure at the window's start
    or end: its contributions leave or enter as a distinct count's, and each counted value's
    membership changes when the point passes one of its intervals' ends."""
    among = m.among
    assert among is not None
    lo = as_of - span
    shift = _point_shift(among, span)
    candidates: list[int] = []
    seen: dict[Any, int] = {}
    anchored = bool(m.window_conds)
    if anchored:  # conditions flip too
        flips = _anchored_next(store, m, group, span, as_of)
        if flips is not None:
            candidates.append(flips)
    for day in range((lo + 1) // DAY_MS, as_of // DAY_MS + 1):
        for (slot, dv), weight in (store.get(("dc", m.index, group, day)) or {}).items():
            t = slot[0] if anchored else slot
            if t <= lo:
                continue
            candidates.append(t + span if t <= as_of else t)
            if t <= as_of:
                seen[dv] = seen.get(dv, 0) + weight
    k = m.threshold
    for dv, n in seen.items():
        if n < k:
            continue  # not counted until a contribution arrives (an event, or advance)
        for (start, end), count in (store.get(("ai", among.index, group, dv)) or {}).items():
            if count > 0:
                candidates.append(start + 1 + shift)
                if end is not None:
                    candidates.append(end + 1 + shift)
    return _later(candidates, as_of)
