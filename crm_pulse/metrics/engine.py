"""The incremental engine: canonical events in, changed metric values out.

For every record the engine keeps its last applied version and the fields its measures read.
Applying an event recomputes that record's contributions (see :mod:`.measures`) before and
after, and adds the difference to per-window buckets, so the cost of an event does not depend on
how much history there is. Stale events (version not greater than the applied one) change
nothing; deletes leave a tombstone so a late, older upsert cannot bring a record back.

State entries (all in one :class:`~.state.StateStore`)::

    ("r", source, object, id)        -> [version, fields tuple | None, max delete version, stage history]
    ("b", measure, group, window)    -> [value, contributions]        window = (kind, index)
    ("c", measure, group, window, v) -> contributions of distinct value v
    ("d", measure, group, day)       -> [value, contributions]        per UTC day, rolling windows
    ("dm", measure, group, day)      -> {time: value}                 exact times within the day
    ("am", measure, group)           -> {month: [starts, ends]}       ``active`` intervals
    ("at", measure, group, month)    -> {time: [starts, ends]}        exact times within the month
    ("o", metric, group, window)     -> last value reported by :meth:`Engine.changes`

Time is an input: nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from typing import Any

from .calendar import CALENDAR_KINDS, CURRENT, DAY_MS, Window, WindowSpec
from .catalog import Catalog, CompiledMetric
from .events import Event
from .measures import CompiledMeasure, Contributions, Group, stays_of
from .report import MetricValue, evaluate, report
from .state import Key, MemoryStore, StateStore

__all__ = ["DEFAULT_WINDOWS", "Delta", "Engine"]

DEFAULT_WINDOWS = (WindowSpec("month"), WindowSpec("quarter"))
Delta = tuple[tuple[int, Group, Any, Any], int, int]
"""((measure index, group, slot, distinct value), value delta, contribution-count delta):
plain ints, strings, dates and tuples, so a delta can travel over Kafka."""
_CURRENT_KEY = ("current", 0)
_MONTHS_PER = {"month": 1, "quarter": 3, "year": 12}


class Engine:
    """Maintains every measure of a catalog incrementally in a state store."""

    def __init__(
        self,
        catalog: Catalog,
        store: StateStore | None = None,
        windows: Sequence[WindowSpec] = DEFAULT_WINDOWS,
    ) -> None:
        self.catalog = catalog
        self.calendar = catalog.calendar
        self.store: StateStore = store if store is not None else MemoryStore()
        self.specs = tuple(windows)
        self.kinds = tuple(k for k in CALENDAR_KINDS if any(s.kind == k for s in self.specs))
        self.rolling = tuple(s for s in self.specs if s.kind == "rolling")
        self._kind_months = tuple((k, _MONTHS_PER[k]) for k in self.kinds)
        self.measures = {m.index: m for m in catalog.measures}
        self._dirty: set[tuple[int, Group, Any]] = set()
        self.applied = 0
        self.stale = 0

    # ---------------------------------------------------------------- applying events

    def apply(self, event: Event) -> bool:
        """Apply one event; True if it changed any record state."""
        deltas = self.record_deltas(event)
        if deltas is None:
            return False
        for ckey, delta, dn in deltas:
            self._apply_delta(ckey, delta, dn)
        return True

    def record_deltas(self, event: Event) -> list[Delta] | None:
        """Phase 1 (keyed by record): update the record's state and return the contribution
        deltas the event causes, or None if it is stale. Nothing outside the record changes:
        :meth:`apply_deltas` (phase 2, keyed by metric group) applies them to the buckets.
        The Faust runtime runs the phases in different partitions; :meth:`apply` runs both."""
        measures = self.catalog.by_object.get(event.object)
        if not measures:
            return None
        store = self.store
        key: Key = ("r", event.source, event.object, event.id)
        state = store.get(key)
        reads = self.catalog.reads[event.object]
        stays = self.catalog.stays.get(event.object)
        if state is None:
            state = [None, None, None, None]
        old_version, old_fields, max_delete, history = state
        version = event.version

        new_history = history
        if stays is not None:
            new_history = _history_after(history, max_delete, event, stays.field, stays.entered)
        new_max_delete = max_delete
        if event.op == "delete" and (max_delete is None or version > max_delete):
            new_max_delete = version
        stale = old_version is not None and version <= old_version
        if stale and new_history is history and (stays is None or new_max_delete == max_delete):
            self.stale += 1
            return None

        if stale:
            new_version, new_fields = old_version, old_fields
        else:
            new_version = version
            if event.op == "upsert":
                values = event.values
                new_fields = tuple(values.get(f) for f in reads)
            else:
                new_fields = None
        out: list[Delta] = []
        if new_fields != old_fields or new_history != history:
            old_c = self._contributions(measures, reads, old_fields, history)
            new_c = self._contributions(measures, reads, new_fields, new_history)
            for ckey, weight in new_c.items():
                if ckey in old_c:
                    delta = weight - old_c.pop(ckey)
                    if delta:
                        out.append((ckey, delta, 0))
                else:
                    out.append((ckey, weight, 1))
            for ckey, weight in old_c.items():
                out.append((ckey, -weight, -1))
        store.put(key, [new_version, new_fields, new_max_delete, new_history])
        self.applied += 1
        return out

    def apply_deltas(self, deltas: Iterable[Delta]) -> None:
        """Phase 2 (keyed by metric group): add contribution deltas to the buckets."""
        for ckey, delta, dn in deltas:
            self._apply_delta(ckey, delta, dn)

    @staticmethod
    def delta_group(delta: Delta) -> Group:
        """The metric group a delta belongs to: the partition key of phase 2."""
        return delta[0][1]

    def apply_all(self, events: Iterable[Event]) -> int:
        """Apply events in order; returns how many changed a record."""
        n = 0
        for event in events:
            if self.apply(event):
                n += 1
        return n

    def _contributions(
        self,
        measures: list[CompiledMeasure],
        reads: tuple[str, ...],
        fields: tuple[Any, ...] | None,
        history: list[tuple[int, Any, Any]] | None,
    ) -> Contributions:
        out: Contributions = {}
        if fields is None:
            return out
        values = dict(zip(reads, fields, strict=True))
        for m in measures:
            stays = m.definition.stays
            if stays is None:
                m.contribute(values, out)
                continue
            for stage, entered, left in stays_of(history or ()):
                sub = dict(values)
                sub[stays.field] = stage
                sub["entered_at"] = entered
                sub["left_at"] = left
                m.contribute(sub, out)
        return out

    # ---------------------------------------------------------------- buckets

    def _apply_delta(self, ckey: tuple[int, Group, Any, Any], delta: int, dn: int) -> None:
        """Add ``delta`` to the buckets of one contribution; ``dn`` (+1/0/-1) counts contributions."""
        index, group, slot, dv = ckey
        m = self.measures[index]
        placement = m.placement
        if placement in ("timed", "stays"):
            if isinstance(slot, tuple):
                t, anchors = slot
            else:
                t, anchors = slot, None
            cal = self.calendar
            month = cal.month_of(t)
            for kind, per in self._kind_months:
                idx = month // per
                if anchors is not None:
                    start, end = cal.bounds(Window(WindowSpec(kind), idx))
                    if not all(
                        c.holds(a, start, end) for c, a in zip(m.window_conds, anchors, strict=True)
                    ):
                        continue
                self._add(m, group, (kind, idx), dv, delta, dn)
            if self.rolling and not m.calendar_only:
                self._add_day(m, group, t, delta, dn)
        elif placement in ("snapshot", "duplicates"):
            self._add(m, group, _CURRENT_KEY, dv, delta, dn)
        elif placement == "period":
            self._add_period(m, group, slot, dv, delta, dn)
        else:  # active: a count, so delta == dn
            self._add_active(m, group, slot, delta)

    def _add(
        self, m: CompiledMeasure, group: Group, wkey: tuple[str, int], dv: Any, delta: int, dn: int
    ) -> None:
        store = self.store
        bkey = ("b", m.index, group, wkey)
        bucket = store.get(bkey)
        if bucket is None:
            bucket = [0, 0]
        if dv is None:
            bucket[0] += delta
            bucket[1] += dn
        else:
            ckey = ("c", m.index, group, wkey, dv)
            old = store.get(ckey) or 0
            new = old + delta
            if new:
                store.put(ckey, new)
            else:
                store.delete(ckey)
            if m.aggregate == "duplicates":
                bucket[0] += (new if new >= 2 else 0) - (old if old >= 2 else 0)
            else:
                bucket[0] += (new > 0) - (old > 0)
            bucket[1] += delta
        if bucket[1]:
            store.put(bkey, bucket)
        else:
            store.delete(bkey)
        self._dirty.add((m.index, group, wkey))

    def _add_day(self, m: CompiledMeasure, group: Group, t: int, delta: int, dn: int) -> None:
        store = self.store
        day = t // DAY_MS
        dkey = ("d", m.index, group, day)
        bucket = store.get(dkey) or [0, 0]
        bucket[0] += delta
        bucket[1] += dn
        mkey = ("dm", m.index, group, day)
        times = store.get(mkey) or {}
        cell = times.get(t) or [0, 0]
        cell[0] += delta
        cell[1] += dn
        if cell[1]:
            times[t] = cell
        else:
            times.pop(t, None)
        if bucket[1]:
            store.put(dkey, bucket)
            store.put(mkey, times)
        else:
            store.delete(dkey)
            store.delete(mkey)
        self._dirty.add((m.index, group, ("day", day)))

    def _add_period(
        self, m: CompiledMeasure, group: Group, slot: Any, dv: Any, delta: int, dn: int
    ) -> None:
        period_kind, start_day = slot
        cal = self.calendar
        match = m.definition.period.match if m.definition.period else "exact"
        for kind in self.kinds:
            if match == "exact":
                if kind != period_kind:
                    continue
                idx = cal.window_of_date(kind, start_day)
                if idx is None:
                    continue
            else:
                start, end = cal.period_span(period_kind, start_day)
                idx = cal.index_of(kind, start)
                if end > cal.bounds(Window(WindowSpec(kind), idx))[1]:
                    continue
            self._add(m, group, (kind, idx), dv, delta, dn)

    def _add_active(self, m: CompiledMeasure, group: Group, slot: Any, delta: int) -> None:
        start, end = slot
        store = self.store
        akey = ("am", m.index, group)
        months = store.get(akey) or {}
        cal = self.calendar
        for pos, t in ((0, start), (1, end)):
            if t is None:
                continue
            month = cal.month_of(t)
            counts = months.get(month) or [0, 0]
            counts[pos] += delta
            if counts[0] or counts[1]:
                months[month] = counts
            else:
                months.pop(month, None)
            tkey = ("at", m.index, group, month)
            times = store.get(tkey) or {}
            cell = times.get(t) or [0, 0]
            cell[pos] += delta
            if cell[0] or cell[1]:
                times[t] = cell
            else:
                times.pop(t, None)
            if times:
                store.put(tkey, times)
            else:
                store.delete(tkey)
            self._dirty.add((m.index, group, ("active", month)))
        if months:
            store.put(akey, months)
        else:
            store.delete(akey)

    # ---------------------------------------------------------------- reading values

    def raw(self, m: CompiledMeasure, group: Group, window: Window, as_of: int) -> int:
        """A measure's integer value in one window (the :class:`MeasureSource` protocol)."""
        kind = window.spec.kind
        if m.placement == "active":
            return self._active_raw(m, group, window, as_of)
        if kind == "current":
            bucket = self.store.get(("b", m.index, group, _CURRENT_KEY))
            return int(bucket[0]) if bucket else 0
        if kind == "rolling":
            return self._rolling_raw(m, group, as_of - window.spec.days * DAY_MS, as_of)
        bucket = self.store.get(("b", m.index, group, (kind, window.index)))
        return int(bucket[0]) if bucket else 0

    def _rolling_raw(self, m: CompiledMeasure, group: Group, lo: int, hi: int) -> int:
        store = self.store
        first, last = lo // DAY_MS, (hi - 1) // DAY_MS
        total = 0
        for day in range(first, last + 1):
            if first < day < last:
                bucket = store.get(("d", m.index, group, day))
                if bucket:
                    total += bucket[0]
                continue
            times = store.get(("dm", m.index, group, day))
            if times:
                total += sum(cell[0] for t, cell in times.items() if lo <= t < hi)
        return total

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
        from .report import window_end

        start, end = window_end(self.calendar, window, as_of)
        active = m.definition.active
        assert active is not None
        return self.active_at(m, group, start if active.when == "window_start" else end)

    def groups_with_data(self, m: CompiledMeasure, fields: tuple[str, ...]) -> Iterator[Group]:
        index = self._index()
        for group in index.groups.get(m.index, ()):
            if tuple(group[0::2]) == fields:
                yield group

    def first_index(self, m: CompiledMeasure, group: Group, kind: str) -> int | None:
        return self._index().first.get((m.index, group, kind))

    # ---------------------------------------------------------------- outputs

    def report(self, as_of: int, *, keep_null: bool = False) -> list[MetricValue]:
        """Every metric row at ``as_of`` (what ``crm-pulse replay`` prints)."""
        self._report_index = _StateIndex.build(self)
        try:
            return report(self.catalog, self, as_of, self.specs, keep_null=keep_null)
        finally:
            self._report_index = None

    def changes(self, as_of: int) -> list[MetricValue]:
        """The (metric, window, group) values that moved since the last call.

        Compares each affected value with the last one this method returned (kept in the state,
        so it survives restarts) and returns only the different ones; a value that became null is
        returned with ``value=None``.
        """
        targets: set[tuple[str, Group, Window]] = set()
        for index, group, wkey in self._dirty:
            fields = tuple(group[0::2])
            for metric in self.catalog.metrics_by_measure.get(index, ()):
                if fields not in metric.groups:
                    continue
                for window in self._affected(metric, wkey, as_of):
                    targets.add((metric.name, group, window))
        self._dirty.clear()
        out: list[MetricValue] = []
        store = self.store
        for name, group, window in sorted(targets, key=lambda x: (x[0], _sort_group(x[1]), x[2])):
            metric = self.catalog.metrics[name]
            value = evaluate(self.catalog, self, metric, group, window, as_of)
            okey = ("o", metric.name, group, (window.spec.kind, window.spec.days, window.index))
            stored = store.get(okey)
            previous = None if stored is None else Fraction(stored[0], stored[1])
            if stored is not None and previous == value:
                continue
            if stored is None and value is None:
                continue
            if value is None:
                store.delete(okey)
            else:
                store.put(okey, [value.numerator, value.denominator])
            out.append(MetricValue(metric.name, window, group, value))
        return out

    def _affected(self, metric: CompiledMetric, wkey: Any, as_of: int) -> list[Window]:
        kind, idx = wkey
        cal = self.calendar
        if kind == "current":
            return [Window(CURRENT)] if metric.is_current else []
        out: list[Window] = []
        if kind in CALENDAR_KINDS:
            spec = WindowSpec(kind)
            if metric.supports(spec) and idx <= cal.index_of(kind, as_of):
                out.append(Window(spec, idx))
        elif kind == "active":
            for k in self.kinds:
                spec = WindowSpec(k)
                if not metric.supports(spec):
                    continue
                first = cal.index_of(k, cal.month_start(idx))
                out.extend(Window(spec, i) for i in range(first, cal.index_of(k, as_of) + 1))
        out.extend(Window(s) for s in self.rolling if kind != "current" and metric.supports(s))
        return out

    _report_index: _StateIndex | None = None

    def _index(self) -> _StateIndex:
        """The index built for the report under way; outside a report, a fresh one."""
        if self._report_index is None:
            return _StateIndex.build(self)
        return self._report_index


def _sort_group(group: Group) -> tuple[str, ...]:
    return tuple(str(x) for x in group)


def _history_after(
    history: list[tuple[int, Any, Any]] | None,
    max_delete: int | None,
    event: Event,
    field: str,
    entered: str,
) -> list[tuple[int, Any, Any]] | None:
    """The stage history once ``event`` is known: upserts newer than the newest delete."""
    version = event.version
    if event.op == "delete":
        if max_delete is not None and version <= max_delete:
            return history
        if not history:
            return history
        kept = [h for h in history if h[0] > version]
        return kept if len(kept) != len(history) else history
    if max_delete is not None and version <= max_delete:
        return history
    items = history or []
    if any(h[0] == version for h in items):
        return history
    values = event.values
    entry = (version, values.get(field), values.get(entered))
    new = [*items, entry]
    if items and items[-1][0] > version:
        new.sort(key=lambda h: h[0])
    return new


class _StateIndex:
    """Which groups have data and the earliest window per kind: built once per report."""

    def __init__(self) -> None:
        self.groups: dict[int, set[Group]] = {}
        self.first: dict[tuple[int, Group, str], int] = {}

    def _first(self, key: tuple[int, Group, str], idx: int) -> None:
        current = self.first.get(key)
        if current is None or idx < current:
            self.first[key] = idx

    @classmethod
    def build(cls, engine: Engine) -> _StateIndex:
        index = cls()
        cal = engine.calendar
        for key, value in engine.store.items():
            tag = key[0]
            if tag == "b":
                _, mi, group, (kind, idx) = key
                index.groups.setdefault(mi, set()).add(group)
                if kind != "current":
                    index._first((mi, group, kind), idx)
            elif tag == "am":
                _, mi, group = key
                index.groups.setdefault(mi, set()).add(group)
                starts = [mo for mo, (s, _e) in value.items() if s]
                if starts:
                    first_month = min(starts)
                    for kind in engine.kinds:
                        index._first(
                            (mi, group, kind), cal.index_of(kind, cal.month_start(first_month))
                        )
            elif tag == "d":
                _, mi, group, _day = key
                index.groups.setdefault(mi, set()).add(group)
        return index
