"""The read path: a measure's raw value in a calendar, rolling, current or ``active`` window,
minus what is not due yet, and the groups with data."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import Any

from ..calendar import (
    DAY_MS,
    FINE_KINDS,
    Window,
    WindowSpec,
)
from ..measures import CompiledMeasure, Group, percentile
from ..members import among_count, multiset, rolling_detail, rolling_periods
from .core import _ANCHORED, _CURRENT_KEY, _MONTHLY, _MONTHS_PER, HOUR_MS, EngineCore
from .indexes import _LiveGroups, _StateIndex


class Reads(EngineCore):
    """A measure's value in a window (the :class:`~..report.MeasureSource` protocol) and the
    groups with data."""

    def raw(
        self, m: CompiledMeasure, group: Group, window: Window, as_of: int
    ) -> int | Fraction | None:
        """A measure's value in one window, in its scale (the :class:`MeasureSource` protocol):
        an integer, but a percentile may fall between two values, and has none without any."""
        kind = window.spec.kind
        if m.among is not None:
            return among_count(self.store, self.calendar, self.pending, m, group, window, as_of)
        if m.percentile is not None:
            values = multiset(self.store, self.calendar, self.pending, m, group, window, as_of)
            return percentile(values, m.percentile)
        if m.placement == "active":
            return self._active_raw(m, group, window, as_of)
        if kind == "current":
            bucket = self.store.get(("b", m.index, group, _CURRENT_KEY))
            return int(bucket[0]) if bucket else 0
        if kind == "rolling":
            lo = as_of - window.spec.days * DAY_MS
            if m.placement == "period":
                return rolling_periods(self.store, self.calendar, m, group, lo, as_of)
            if m.detailed_days:
                return rolling_detail(self.store, m, group, lo, as_of)
            return self._rolling_raw(m, group, lo, as_of)
        if self._place[m.index] == _MONTHLY and kind in _MONTHS_PER:
            per = _MONTHS_PER[kind]
            first = self.calendar.first_month(kind, window.index)
            total = 0
            for month in range(first, first + per):
                bucket = self.store.get(("b", m.index, group, ("month", month)))
                if bucket:
                    total += bucket[0]
        else:
            bucket = self.store.get(("b", m.index, group, (kind, window.index)))
            total = int(bucket[0]) if bucket else 0
        return total - self._not_yet(m, group, window, as_of)

    def _not_yet(self, m: CompiledMeasure, group: Group, window: Window, as_of: int) -> int:
        """What contributions dated after ``as_of`` add to a calendar window's raw value."""
        start, end = self.calendar.bounds(window)
        if as_of + 1 >= end:
            return 0
        anchored = self._place[m.index] == _ANCHORED
        total = 0
        later: dict[Any, int] = {}
        for _t, slot, dv, delta, _dn in self.pending.entries(m.index, group, start, end, as_of):
            if anchored and not all(
                c.holds(a, start, end) for c, a in zip(m.window_conds, slot[1], strict=True)
            ):
                continue
            if dv is None:
                total += delta
            else:
                later[dv] = later.get(dv, 0) + delta
        wkey = (window.spec.kind, window.index)
        for dv, n in later.items():  # a distinct value counts while any contribution is due
            now = self.store.get(("c", m.index, group, wkey, dv)) or 0
            if now >= m.threshold > now - n:
                total += 1
        return total

    def all_pending(self, mi: int, group: Group, wkey: tuple[str, int], n: int, as_of: int) -> bool:
        """Whether every one of a bucket's ``n`` contributions is dated after ``as_of``."""
        kind, idx = wkey
        if kind not in _MONTHS_PER and kind not in FINE_KINDS:
            return False
        start, end = self.calendar.bounds(Window(WindowSpec(kind), idx))
        if as_of + 1 >= end:
            return False
        m = self.measures[mi]
        anchored = self._place[mi] == _ANCHORED
        later = 0
        for _t, slot, _dv, _delta, dn in self.pending.entries(mi, group, start, end, as_of):
            if anchored and not all(
                c.holds(a, start, end) for c, a in zip(m.window_conds, slot[1], strict=True)
            ):
                continue
            later += dn
        return later >= n

    def _rolling_raw(self, m: CompiledMeasure, group: Group, lo: int, hi: int) -> int:
        store = self.store
        first, last = (lo + 1) // DAY_MS, hi // DAY_MS
        total = 0
        for day in range(first, last + 1):
            if first < day < last:
                bucket = store.get(("d", m.index, group, day))
                if bucket:
                    total += bucket[0]
                continue
            for times in self._day_times(m.index, group, day, lo, hi):
                total += sum(cell[0] for t, cell in times.items() if lo < t <= hi)
        return total

    def _day_times(
        self, index: int, group: Group, day: int, lo: int | None = None, hi: int | None = None
    ) -> Iterator[dict[int, list[int]]]:
        """The exact-time dicts of one day (each hour's, and an older state's day dict), those
        of hours that overlap (``lo``, ``hi``] when given."""
        get = self.store.get
        times = get(("dm", index, group, day))
        if times:
            yield times
        for hour in range(day * 24, day * 24 + 24):
            if (lo is not None and (hour + 1) * HOUR_MS <= lo + 1) or (
                hi is not None and hour * HOUR_MS > hi
            ):
                continue
            times = get(("dh", index, group, hour))
            if times:
                yield times

    def active_at(self, m: CompiledMeasure, group: Group, t: int) -> int:
        """Records whose interval (start, end] holds ``t``: #starts before t - #ends before t."""
        months = self.store.get(("am", m.index, group))
        if not months:
            return 0
        month = self.calendar.month_of(t)
        total = 0
        for mo, (starts, ends) in months.items():
            if mo < month:
                total += starts - ends
        times = self.store.get(("at", m.index, group, month))
        if times:
            for at, (starts, ends) in times.items():
                if at < t:
                    total += starts - ends
        return total

    def _active_raw(self, m: CompiledMeasure, group: Group, window: Window, as_of: int) -> int:
        from ..report import window_end

        start, end = window_end(self.calendar, window, as_of)
        active = m.definition.active
        assert active is not None
        return self.active_at(m, group, start if active.when == "window_start" else end)

    def groups_with_data(self, m: CompiledMeasure, fields: tuple[str, ...]) -> Iterator[Group]:
        """Groups over ``fields`` in which ``m`` has data. In a report, from the index the
        report built; outside one (write-back rules: ticks, the status page, ``/metrics``),
        with ``track_groups`` from an index kept up to date with the buckets the engine
        touches, so a read costs the groups it returns, not a scan of the state."""
        if self._report_index is not None:
            for group in self._report_index.groups.get(m.index, ()):
                if tuple(group[0::2]) == fields:
                    yield group
            return
        if not self._track_groups:
            for group in self._index().groups.get(m.index, ()):
                if tuple(group[0::2]) == fields:
                    yield group
            return
        live = self._live_groups
        if live is None:
            live = self._live_groups = _LiveGroups.build(self.store)
        live.update(self.store, self._dirty)  # what moved since the last changes()
        as_of = self.pending.horizon
        for group, keys in list(live.groups(m.index, fields).items()):
            if any(_StateIndex.counts(self, key, self.store.get(key), as_of) for key in keys):
                yield group

    def first_index(self, m: CompiledMeasure, group: Group, kind: str) -> int | None:
        return self._index().first.get((m.index, group, kind))

    def _index(self) -> _StateIndex:
        """The index built for the report under way; outside a report, a fresh one."""
        if self._report_index is None:
            return _StateIndex.build(self, self.pending.horizon)
        return self._report_index
