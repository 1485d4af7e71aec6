"""When a rolling window's value can next change by time alone.

A rolling window ``(as_of - days, as_of]`` slides with the clock: a value over it moves without
any event when a contribution leaves it (its time passes the window's start) or a future-dated
one enters it (its time passes the end; :meth:`Engine.advance` reports those too). A runtime
that writes rolling values keeps its groups indexed by that time, so that a tick evaluates only
the groups whose value can have moved instead of every group of every rolling rule.

:func:`next_change` reads the contributions' exact times from the engine's day entries
(``"d"`` with its hour dicts ``"dh"`` and older day dicts ``"dm"``, ``"dc"`` for distinct
values, ``"pd"`` for percentiles; layout in :mod:`.engine`). Measures whose rolling value also
depends on something else than which contributions lie in the window (window conditions
compared with the window's bounds, periods, ``active`` intervals, ``among``) have no such
time: :func:`indexable` says so and a runtime evaluates their groups at every tick.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .calendar import DAY_MS
from .measures import CompiledMeasure, Group
from .state import StateStore

__all__ = ["indexable", "next_change"]

HOUR_MS = DAY_MS // 24


def indexable(m: CompiledMeasure) -> bool:
    """Whether ``m``'s rolling value is a function of the contributions inside the window only
    (then :func:`next_change` applies)."""
    if m.among is not None or m.window_conds:
        return False
    return m.placement not in ("period", "active")


def next_change(
    store: StateStore, m: CompiledMeasure, group: Group, days: int, as_of: int
) -> int | None:
    """The earliest time after ``as_of`` at which ``m``'s value for ``group`` over a rolling
    window of ``days`` days can change by time alone, as the state holds now: the first
    contribution after the window's start leaves it at its time + the window's length, or, if
    it is dated after ``as_of``, enters it at its time. None: no contribution is dated after
    the window's start up to the end of ``as_of``'s day (nothing leaves; what enters later is
    reported by :meth:`Engine.advance`). ``m`` must be :func:`indexable`."""
    span = days * DAY_MS
    lo = as_of - span
    first = _first_after(store, m, group, lo, as_of // DAY_MS)
    if first is None:
        return None
    return first + span if first <= as_of else first


def _first_after(
    store: StateStore, m: CompiledMeasure, group: Group, lo: int, last_day: int
) -> int | None:
    """The earliest contribution time after ``lo``, looking up to ``last_day`` (included)."""
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
