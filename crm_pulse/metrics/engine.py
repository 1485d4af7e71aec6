"""The incremental engine: canonical events in, changed metric values out.

For every record the engine keeps its last applied version and the fields its measures read.
Applying an event recomputes that record's contributions (see :mod:`.measures`) before and
after, and adds the difference to per-window buckets, so the cost of an event does not depend on
how much history there is. Stale events (an older version, or an equal one that loses the tie:
see :func:`.events.supersedes`) change nothing; deletes leave a tombstone so a late, older
upsert cannot bring a record back.

State entries (all in one :class:`~.state.StateStore`)::

    ("r", source, object, id)        -> [version, fields tuple | None, max delete version,
                                         stage history, canonical JSON of the applied upsert,
                                         last change register (see :mod:`.modifier`)]
    ("b", measure, group, window)    -> [value, contributions]        window = (kind, index)
                                        counts and sums: months only, quarters and years are
                                        read as sums of months; distinct values, window
                                        conditions and periods: every stored kind
    ("c", measure, group, window, v) -> contributions of distinct value v
    ("d", measure, group, day)       -> [value, contributions]        per UTC day, rolling windows
    ("dh", measure, group, hour)     -> {time: value}                 exact times within the hour
    ("dm", measure, group, day)      -> {time: value}                 the same per day: written by
                                        earlier versions, read and retracted from, never added to
    ("am", measure, group)           -> {month: [starts, ends]}       ``active`` intervals
    ("at", measure, group, month)    -> {time: [starts, ends]}        exact times within the month
    ("o", metric, group, window)     -> last value reported by :meth:`Engine.changes`

Two phases (see :mod:`.deltas`): :meth:`Engine.deltas` touches only ``"r"`` entries and returns
the record's contribution deltas; :meth:`Engine.apply_deltas` touches only bucket entries (and
:meth:`Engine.changes` the ``"o"`` entries). :meth:`Engine.apply` does both. A distributed
runtime keys phase 1 by record and phase 2 by :attr:`.Delta.group`.

Calendar kinds are stored for the report windows and for the windows goals are set in.
Storing an entry differently, or giving one another meaning: bump
:data:`.fingerprint.STATE_FORMAT`, so runtimes rebuild (or refuse) states of the older layout.

Time is an input: nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from fractions import Fraction
from typing import Any

from .calendar import (
    CALENDAR_KINDS,
    CURRENT,
    DAY_MS,
    FINE_KINDS,
    Window,
    WindowSpec,
    parse_window_label,
)
from .catalog import Catalog, CompiledMetric
from .collector import collector_paused
from .deltas import Delta
from .events import Event, supersedes
from .measures import CompiledMeasure, ContributionKey, Group, percentile
from .members import among_count, count_in, multiset, rolling_detail, rolling_periods
from .modifier import advance, effective, positions
from .pending import Due, PendingLedger
from .plans import ObjectPlan, history_after
from .report import ALL, MetricValue, Selection, evaluate, iter_report
from .state import Key, MemoryStore, StateStore
from .window_groups import WindowGroups, window_keys

__all__ = ["DEFAULT_WINDOWS", "Engine"]

DEFAULT_WINDOWS = (WindowSpec("month"), WindowSpec("quarter"))
_CURRENT_KEY = ("current", 0)
Change = tuple[ContributionKey, int, int]
"""(contribution, weight delta, count delta +1/0/-1): what phase 1 hands to phase 2."""
# how a measure's contributions are placed in buckets (see Engine._apply_delta)
_MONTHLY, _TIMED, _ANCHORED, _SNAPSHOT, _PERIOD, _ACTIVE, _MULTISET = range(7)
_BY_MONTH = (_MONTHLY, _MULTISET)  # kept in month buckets; quarters and years read months
_MONTHS_PER = {"month": 1, "quarter": 3, "year": 12}
HOUR_MS = DAY_MS // 24
"""Exact times of rolling windows are kept per hour (``"dh"`` entries)."""


class Engine:
    """Maintains every measure of a catalog incrementally in a state store."""

    def __init__(
        self,
        catalog: Catalog,
        store: StateStore | None = None,
        windows: Sequence[WindowSpec] = DEFAULT_WINDOWS,
        *,
        track_groups: bool = False,
    ) -> None:
        """``track_groups``: keep the groups with data up to date for reads outside reports
        (:meth:`groups_with_data`), for an engine that is the only writer of its store and is
        rebuilt when the store is rolled back (the embedded runtime's consumer); otherwise each
        such read scans the state."""
        self.catalog = catalog
        self._track_groups = track_groups
        self.calendar = catalog.calendar
        self.store: StateStore = store if store is not None else MemoryStore()
        self.specs = tuple(catalog.calendar.spec(s) for s in windows)  # fiscal labels
        self.kinds = tuple(k for k in CALENDAR_KINDS if any(s.kind == k for s in self.specs))
        self.rolling = tuple(s for s in self.specs if s.kind == "rolling")
        # calendar kinds kept in buckets: the reported ones and those goals are set in
        goal_kinds = {parse_window_label(g.window).spec.kind for g in catalog.definitions.goals}
        stored = tuple(k for k in CALENDAR_KINDS if k in self.kinds or k in goal_kinds)
        # month, quarter, year: made of months; day and week: buckets of their own
        self._kind_months = tuple((k, _MONTHS_PER[k]) for k in stored if k in _MONTHS_PER)
        self._fine = tuple(k for k in stored if k in FINE_KINDS)
        self._fine_cache: dict[int, tuple[tuple[str, int], ...]] = {}
        self.measures = {m.index: m for m in catalog.measures}
        # (tag, measure, group, window key) of every bucket touched since the last changes()
        self._dirty: set[tuple[str, int, Group, Any]] = set()
        self._plans = {
            obj: ObjectPlan(
                ms, catalog.reads[obj], catalog.stays.get(obj), catalog.schemas.get(obj)
            )
            for obj, ms in catalog.by_object.items()
        }
        # where each object's plan holds modified_by / modified_at (kept by a register)
        self._changed = {obj: positions(plan.reads) for obj, plan in self._plans.items()}
        self._place = {m.index: _placement_code(m, bool(stored)) for m in catalog.measures}
        self._daily = {
            m.index: bool(self.rolling) and not m.calendar_only for m in catalog.measures
        }
        self._month_of = self.calendar.month_of
        self._month_wkeys: dict[int, tuple[tuple[str, int], ...]] = {}
        self._month_key: dict[int, tuple[str, int]] = {}
        # a MemoryStore hands out live objects: read and write its dict directly, skip put-backs
        self._live = type(self.store) is MemoryStore
        if isinstance(self.store, MemoryStore) and self._live:
            data = self.store.data
            self._get: Callable[[Key], Any] = data.get
            self._put: Callable[[Key, Any], None] = data.__setitem__
        else:
            self._get = self.store.get
            self._put = self.store.put
        self.pending = PendingLedger(self.store)
        self.applied = 0
        self.stale = 0

    # ---------------------------------------------------------------- applying events

    def apply(self, event: Event) -> bool:
        """Apply one event (both phases); True if it changed any record state."""
        return self.apply_counted(event) is not None

    def apply_counted(self, event: Event) -> bool | None:
        """Apply one event; True if it moved a metric's contributions, False if it changed the
        record's state only (a re-read of an unchanged record, our own write coming back, a
        field no metric reads), None if it changed nothing (stale, or no metric reads it)."""
        changes = self._record_changes(event)
        if changes is None:
            return None
        if changes:
            self._apply_changes(changes)
        return bool(changes)

    def deltas(self, event: Event) -> list[Delta] | None:
        """Phase 1: update the record's state only and return its contribution deltas.

        None when the event changed no record state (stale or for an object no measure reads);
        an empty list when the record changed but none of its contributions did.
        """
        changes = self._record_changes(event)
        if changes is None:
            return None
        return [Delta(k[0], k[1], k[2], k[3], delta, dn) for k, delta, dn in changes]

    def apply_deltas(self, deltas: Iterable[Delta]) -> None:
        """Phase 2: add deltas (from :meth:`deltas`, any engine with the same catalog) to buckets.

        Touches no record state. An engine that receives only the deltas of some groups reports
        and returns changes correctly for exactly those groups (see ``owns`` of :meth:`report`).
        """
        self._apply_changes(
            [((d.measure, d.group, d.slot, d.value), d.delta, d.dn) for d in deltas]
        )

    def _record_changes(self, event: Event) -> list[Change] | None:
        """Update the record's state; its contribution changes, None if the state did not change."""
        plan = self._plans.get(event.object)
        if plan is None:
            return None
        store = self.store
        key: Key = ("r", event.source, event.object, event.id)
        state: Any = store.get(key)
        fresh = state is None
        if fresh:
            state = [None, None, None, None, None, None]
        elif len(state) < 6:  # written before ties were ordered, or before the register
            state = [*state, *([None] * (6 - len(state)))]
            fresh = True
        old_version, old_fields, max_delete, history, old_tie, register = state
        version = event.version
        op = event.op
        stays = plan.stays
        tie = event.canonical if op == "upsert" else None

        new_history = history
        if stays is not None:
            new_history = history_after(history, max_delete, event, stays.field, stays.entered)
        new_max_delete = max_delete
        if op == "delete" and (max_delete is None or version > max_delete):
            new_max_delete = version
        where = self._changed.get(event.object)
        new_register = register if where is None else advance(register, event, new_max_delete)
        stale = not supersedes(version, op, tie, old_version, old_fields is None, old_tie)
        keeps_deletes = stays is not None or where is not None
        if (
            stale
            and new_history is history
            and new_register is register
            and (not keeps_deletes or new_max_delete == max_delete)
        ):
            self.stale += 1
            return None

        new_values: dict[str, Any] | None = None  # the event's typed fields, when they apply
        if stale:
            new_version, new_fields, new_tie = old_version, old_fields, old_tie
        else:
            new_version, new_tie = version, tie
            if op == "upsert":
                new_values = event.values
                new_fields = tuple(map(new_values.get, plan.reads))
            else:
                new_fields = None
        if where is not None:  # the last change known, whichever upsert named it
            shown = effective(new_fields, where, new_register)
            if shown is not new_fields:
                new_fields, new_values = shown, None
        history_moved = new_history != history
        if old_fields is None or new_fields is None:
            measures = plan.measures if (old_fields is not new_fields or history_moved) else None
        elif new_fields != old_fields or history_moved:
            # only measures reading a field that changed (or the stage history) can change
            changed = {
                i
                for i, pair in enumerate(zip(old_fields, new_fields, strict=True))
                if pair[0] != pair[1]
            }
            measures = [
                item
                for item, deps, staying in plan.items
                if (staying and history_moved) or not changed.isdisjoint(deps)
            ]
        else:
            measures = None
        changes: list[Change] = []
        if measures:
            old_c = plan.contributions(measures, old_fields, history)
            new_c = plan.contributions(measures, new_fields, new_history, new_values)
            if not old_c:
                changes = [(ckey, weight, 1) for ckey, weight in new_c.items()]
            else:
                pop = old_c.pop
                for ckey, weight in new_c.items():
                    old = pop(ckey, None)
                    if old is None:
                        changes.append((ckey, weight, 1))
                    elif weight != old:
                        changes.append((ckey, weight - old, 0))
                changes.extend((ckey, -weight, -1) for ckey, weight in old_c.items())
        if self._live and not fresh:
            state[0] = new_version
            state[1] = new_fields
            state[2] = new_max_delete
            state[3] = new_history
            state[4] = new_tie
            state[5] = new_register
        else:
            store.put(
                key, [new_version, new_fields, new_max_delete, new_history, new_tie, new_register]
            )
        self.applied += 1
        return changes

    def apply_all(self, events: Iterable[Event]) -> int:
        """Apply events in order; returns how many changed a record. The cyclic garbage
        collector is paused meanwhile (see :mod:`.collector`)."""
        n = 0
        record_changes = self._record_changes
        apply_changes = self._apply_changes
        with collector_paused():
            for event in events:
                changes = record_changes(event)
                if changes is not None:
                    n += 1
                    if changes:
                        apply_changes(changes)
        return n

    # ---------------------------------------------------------------- buckets

    def _apply_changes(self, changes: list[Change]) -> None:
        """Add each change to its buckets: the month bucket of a count or sum inline, the rest
        through :meth:`_apply_delta`."""
        place = self._place
        daily = self._daily
        month_of = self._month_of
        month_key = self._month_key
        get = self._get
        put = self._put
        live = self._live
        dirty = self._dirty.add
        horizon = self.pending.horizon
        future = -(1 << 62) if horizon is None else horizon  # after it: also in the ledger
        fine = self._fine
        last_t: Any = None
        wkey: Any = None
        for ckey, delta, dn in changes:
            index, group, slot, _dv = ckey
            if place[index] != _MONTHLY:
                self._apply_delta(ckey, delta, dn)
                continue
            if slot != last_t:  # an event's contributions mostly share one time
                last_t = slot
                month = month_of(slot)
                wkey = month_key.get(month)
                if wkey is None:
                    wkey = month_key[month] = ("month", month)
            bkey = ("b", index, group, wkey)
            bucket = get(bkey)
            if bucket is None:
                if dn:
                    put(bkey, [delta, dn])
            else:
                n = bucket[1] + dn
                if n:
                    bucket[0] += delta
                    bucket[1] = n
                    if not live:
                        put(bkey, bucket)
                else:
                    self.store.delete(bkey)
            dirty(bkey)
            if fine:
                for fkey in self._fine_keys(slot):
                    self._add_sum(index, group, fkey, delta, dn)
            if slot > future:
                self.pending.add(index, group, slot, slot, None, delta, dn)
            if daily[index]:
                self._add_day(index, group, slot, delta, dn)

    def _apply_delta(self, ckey: ContributionKey, delta: int, dn: int) -> None:
        """Add ``delta`` to the buckets of one contribution; ``dn`` (+1/0/-1) counts contributions."""
        index, group, slot, dv = ckey
        place = self._place[index]
        if place == _MONTHLY:
            self._apply_changes([(ckey, delta, dn)])
        elif place == _TIMED:
            month = self._month_of(slot)
            wkeys = self._month_wkeys.get(month)
            if wkeys is None:
                wkeys = self._wkeys_of(month)
            if self._fine:
                wkeys = wkeys + self._fine_keys(slot)
            if dv is None:
                add_sum = self._add_sum
                for wkey in wkeys:
                    add_sum(index, group, wkey, delta, dn)
            else:
                m = self.measures[index]
                for wkey in wkeys:
                    self._add(m, group, wkey, dv, delta, dn)
            if self.pending.pending_after(slot):
                self.pending.add(index, group, slot, slot, dv, delta, dn)
            if self._daily[index]:
                if dv is None:
                    self._add_day(index, group, slot, delta, dn)
                else:
                    self._add_day_detail(index, group, slot, slot, dv, delta)
        elif place == _SNAPSHOT:
            if dv is None:
                self._add_sum(index, group, _CURRENT_KEY, delta, dn)
            else:
                self._add(self.measures[index], group, _CURRENT_KEY, dv, delta, dn)
        elif place == _ANCHORED:
            m = self.measures[index]
            t, anchors = slot
            cal = self.calendar
            month = self._month_of(t)
            placed = [(k, cal.window_index(k, month)) for k, _per in self._kind_months]
            for kind, idx in [*placed, *self._fine_keys(t)]:
                start, end = cal.bounds(Window(WindowSpec(kind), idx))
                if not all(
                    c.holds(a, start, end) for c, a in zip(m.window_conds, anchors, strict=True)
                ):
                    continue
                self._add(m, group, (kind, idx), dv, delta, dn)
            if self.pending.pending_after(t):
                self.pending.add(index, group, t, slot, dv, delta, dn)
            if self._daily[index]:
                self._add_day_detail(index, group, t, slot, dv, delta)
        elif place == _MULTISET:
            self._add_value(index, group, slot, dv, delta, dn)
        elif place == _PERIOD:
            self._add_period(self.measures[index], group, slot, dv, delta, dn)
        else:  # active: a count, so delta == dn
            self._add_active(self.measures[index], group, slot, delta)
            if dv is not None:  # an 'among' target: each member's intervals
                count_in(self.store, ("ai", index, group, dv), slot, delta)

    def _add_value(self, index: int, group: Group, t: int, value: int, delta: int, dn: int) -> None:
        """A percentile measure: the month's multiset of values (and its count bucket); per day,
        the (time, value) pairs rolling windows read."""
        month = self._month_of(t)
        self._add_sum(index, group, ("month", month), delta, dn)
        for fkey in self._fine_keys(t) if self._fine else ():
            self._add_sum(index, group, fkey, delta, dn)
        count_in(self.store, ("p", index, group, month), value, delta)
        if self._daily[index] or self._fine:  # days and weeks read the (time, value) pairs
            count_in(self.store, ("pd", index, group, t // DAY_MS), (t, value), delta)
        if self.pending.pending_after(t):
            self.pending.add(index, group, t, t, value, delta, dn)
        if self._daily[index]:
            self._add_day(index, group, t, delta, dn)

    def _fine_keys(self, t: int) -> tuple[tuple[str, int], ...]:
        """The (day, index) and (week, index) windows holding ``t``, when they are kept."""
        slot = t // 900_000  # every time zone's offset is a multiple of 15 minutes
        keys = self._fine_cache.get(slot)
        if keys is None:
            if len(self._fine_cache) > 100_000:
                self._fine_cache.clear()
            keys = tuple((k, self.calendar.index_of(k, t)) for k in self._fine)
            self._fine_cache[slot] = keys
        return keys

    def _wkeys_of(self, month: int) -> tuple[tuple[str, int], ...]:
        """The (kind, index) calendar windows holding ``month``; cached per month."""
        index = self.calendar.window_index
        wkeys = tuple((kind, index(kind, month)) for kind, _per in self._kind_months)
        self._month_wkeys[month] = wkeys
        return wkeys

    def _add_sum(
        self, index: int, group: Group, wkey: tuple[str, int], delta: int, dn: int
    ) -> None:
        """The common bucket update: a count or sum (no distinct value)."""
        bkey = ("b", index, group, wkey)
        bucket = self._get(bkey)
        if bucket is None:
            if dn:
                self._put(bkey, [delta, dn])
        else:
            n = bucket[1] + dn
            if n:
                bucket[0] += delta
                bucket[1] = n
                if not self._live:
                    self._put(bkey, bucket)
            else:
                self.store.delete(bkey)
        self._dirty.add(bkey)

    def _add(
        self, m: CompiledMeasure, group: Group, wkey: tuple[str, int], dv: Any, delta: int, dn: int
    ) -> None:
        if dv is None:
            self._add_sum(m.index, group, wkey, delta, dn)
            return
        store = self.store
        get, put = self._get, self._put  # a MemoryStore's dict itself (see __init__)
        bkey = ("b", m.index, group, wkey)
        bucket = get(bkey)
        if bucket is None:
            bucket = [0, 0]
        ckey = ("c", m.index, group, wkey, dv)
        old = get(ckey) or 0
        new = old + delta
        if new:
            put(ckey, new)
        else:
            store.delete(ckey)
        if m.aggregate == "duplicates":
            bucket[0] += (new if new >= 2 else 0) - (old if old >= 2 else 0)
        else:
            k = m.threshold
            bucket[0] += (new >= k) - (old >= k)
        bucket[1] += delta
        if bucket[1]:
            put(bkey, bucket)
        else:
            store.delete(bkey)
        self._dirty.add(bkey)
        if m.among is not None:  # the bucket's values, to check each one's membership
            count_in(self.store, ("cs", m.index, group, wkey), dv, delta)

    def _add_day(self, index: int, group: Group, t: int, delta: int, dn: int) -> None:
        store = self.store
        get, put = self._get, self._put
        day = t // DAY_MS
        dkey = ("d", index, group, day)
        bucket = get(dkey) or [0, 0]
        bucket[0] += delta
        bucket[1] += dn
        # exact times per hour: a runtime that persists each changed value writes a small dict,
        # not the whole day's (which grows with every record of the day)
        mkey: Key = ("dm", index, group, day)
        times = get(mkey)
        if times is None or t not in times:  # an older state's day dict holds only its times
            mkey = ("dh", index, group, t // HOUR_MS)
            times = get(mkey) or {}
        cell = times.get(t) or [0, 0]
        cell[0] += delta
        cell[1] += dn
        if cell[1]:
            times[t] = cell
        else:
            times.pop(t, None)
        if bucket[1]:
            put(dkey, bucket)
            if times:
                put(mkey, times)
            else:
                store.delete(mkey)
        else:  # the day holds nothing any more: neither do its exact times
            store.delete(dkey)
            store.delete(("dm", index, group, day))
            for hour in range(day * 24, day * 24 + 24):
                store.delete(("dh", index, group, hour))
        self._dirty.add(("d", index, group, ("day", day)))

    def _add_day_detail(
        self, index: int, group: Group, t: int, slot: Any, dv: Any, delta: int
    ) -> None:
        """Rolling windows of distinct values and window conditions: each contribution of the
        day (see :mod:`.members`)."""
        day = t // DAY_MS
        count_in(self.store, ("dc", index, group, day), (slot, dv), delta)
        self._dirty.add(("d", index, group, ("day", day)))

    def _add_period(
        self, m: CompiledMeasure, group: Group, slot: Any, dv: Any, delta: int, dn: int
    ) -> None:
        period_kind, start_day = slot
        cal = self.calendar
        match = m.definition.period.match if m.definition.period else "exact"
        for kind, _per in self._kind_months:
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
        if self.rolling and match == "within":  # rolling windows read every period record
            count_in(self.store, ("pr", m.index, group), (slot, dv), delta)
            self._dirty.add(("pr", m.index, group, ("period", 0)))

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
            self._dirty.add(("a", m.index, group, ("active", month)))
            self.pending.watch(t, "a", m.index, group)
        if months:
            store.put(akey, months)
        else:
            store.delete(akey)

    # ---------------------------------------------------------------- reading values

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
        from .report import window_end

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

    def rollover_groups(
        self,
        m: CompiledMeasure,
        fields: tuple[str, ...],
        old: Window,
        new: Window,
        as_of: int,
        also: Iterable[Group] = (),
    ) -> set[Group] | None:
        """Groups over ``fields`` whose value of ``m`` can differ between the calendar windows
        ``old`` and ``new`` (those with data in either, see :mod:`.window_groups`), and those of
        ``also`` that have data; None when the engine does not keep them (no ``track_groups``:
        every group with data may)."""
        if not self._track_groups or self._report_index is not None:
            return None
        live = self._live_groups
        if live is None:
            live = self._live_groups = _LiveGroups.build(self.store)
        live.update(self.store, self._dirty)
        by_month = self._place[m.index] in _BY_MONTH
        keys = window_keys(self.calendar, m, by_month, old, new, as_of)
        found = live.windows.groups(m.index, fields, keys)
        found.update(also)
        # with data as groups_with_data counts it: not when all it holds is dated later
        horizon = self.pending.horizon
        keys_of = live.groups(m.index, fields)
        return {
            group
            for group in found
            if any(
                _StateIndex.counts(self, key, self.store.get(key), horizon)
                for key in keys_of.get(group, ())
            )
        }

    def first_index(self, m: CompiledMeasure, group: Group, kind: str) -> int | None:
        return self._index().first.get((m.index, group, kind))

    # ---------------------------------------------------------------- outputs

    def report(
        self,
        as_of: int,
        *,
        keep_null: bool = False,
        owns: Callable[[Group], bool] | None = None,
    ) -> list[MetricValue]:
        """Every metric row at ``as_of`` (what ``crm-pulse replay`` prints).

        ``owns``: on a phase-2 engine that holds only some groups' deltas, keep the rows of the
        groups it owns (company-wide ``current`` rows and goal rows exist without data, so every
        partition would otherwise report them).
        """
        rows = list(self.iter_report(as_of, keep_null=keep_null))
        if owns is not None:
            rows = [r for r in rows if owns(r.group)]
        return rows

    def iter_report(
        self,
        as_of: int,
        *,
        keep_null: bool = False,
        select: Selection = ALL,
        for_people: bool = False,
    ) -> Iterator[MetricValue]:
        """The report rows ``select`` keeps, one at a time (``crm-pulse report`` streams
        them): only the selected metrics' measures are indexed and evaluated. ``for_people``:
        in the order of the csv and table formats (see :func:`.report.iter_report`)."""
        self._report_index = _StateIndex.build(self, as_of, self.measures_for(select))
        try:
            yield from iter_report(
                self.catalog,
                self,
                as_of,
                self.specs,
                keep_null=keep_null,
                select=select,
                for_people=for_people,
            )
        finally:
            self._report_index = None

    def measures_for(self, select: Selection) -> set[int] | None:
        """Indexes of the measures the rows ``select`` keeps read (None: every measure)."""
        if not select.metrics:
            return None
        wanted = {
            m.index
            for metric in self.catalog.metrics.values()
            if select.wants_metric(metric.name)
            for m in metric.measures
        }
        for goal in self.catalog.definitions.goals:
            target = self.catalog.metrics.get(goal.metric)
            if target is not None and select.wants_metric(goal.name):
                wanted.update(m.index for m in target.measures)
        return wanted

    def changes(
        self,
        as_of: int,
        *,
        only_changed: bool = True,
        metrics: Mapping[str, Collection[tuple[str, ...]]] | None = None,
    ) -> list[MetricValue]:
        """The (metric, window, group) values that moved since the last call.

        Compares each affected value with the last one this method returned (kept in the state,
        so it survives restarts) and returns only the different ones; a value that became null is
        returned with ``value=None``. ``only_changed=False`` returns every affected value,
        changed or not (for a runtime that sends values before it can record having sent them).
        ``metrics``: only these metrics, in groups over these fields (what a runtime's write-back
        rules read); the others are neither evaluated nor recorded, so a runtime that writes 4
        metrics does not evaluate and keep the last value of every metric, group and window.
        """
        targets: set[tuple[str, Group, Window]] = set()
        for _tag, index, group, wkey in self._dirty:
            fields = tuple(group[0::2])
            for metric in self.catalog.metrics_by_measure.get(index, ()):
                if fields not in (
                    metric.groups if metrics is None else metrics.get(metric.name, ())
                ):
                    continue
                for window in self._affected(metric, wkey, as_of, self._place[index]):
                    targets.add((metric.name, group, window))
        if self._live_groups is not None:
            self._live_groups.update(self.store, self._dirty)
        self._dirty.clear()
        out: list[MetricValue] = []
        store = self.store
        for name, group, window in sorted(targets, key=lambda x: (x[0], _sort_group(x[1]), x[2])):
            metric = self.catalog.metrics[name]
            value = evaluate(self.catalog, self, metric, group, window, as_of)
            okey = ("o", metric.name, group, (window.spec.kind, window.spec.days, window.index))
            stored = store.get(okey)
            previous = None if stored is None else Fraction(stored[0], stored[1])
            if only_changed:
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

    def _affected(self, metric: CompiledMetric, wkey: Any, as_of: int, place: int) -> list[Window]:
        kind, idx = wkey
        cal = self.calendar
        if kind == "current":
            return [Window(CURRENT)] if metric.is_current else []
        out: list[Window] = []
        if place in _BY_MONTH and kind == "month":
            for k in self.kinds:
                if k in FINE_KINDS:
                    continue  # days and weeks have buckets of their own
                spec = cal.spec(WindowSpec(k))
                i = cal.window_index(k, idx)
                if metric.supports(spec) and i <= cal.index_of(k, as_of):
                    out.append(Window(spec, i))
        elif kind in self.kinds:
            spec = cal.spec(WindowSpec(kind))
            if metric.supports(spec) and idx <= cal.index_of(kind, as_of):
                out.append(Window(spec, idx))
        elif kind == "active":
            for k in self.kinds:
                spec = cal.spec(WindowSpec(k))
                if not metric.supports(spec):
                    continue
                first = cal.index_of(k, cal.month_start(idx))
                out.extend(Window(spec, i) for i in range(first, cal.index_of(k, as_of) + 1))
        out.extend(Window(s) for s in self.rolling if kind != "current" and metric.supports(s))
        return out

    _report_index: _StateIndex | None = None
    _live_groups: _LiveGroups | None = None

    def _index(self) -> _StateIndex:
        """The index built for the report under way; outside a report, a fresh one."""
        if self._report_index is None:
            return _StateIndex.build(self, self.pending.horizon)
        return self._report_index


def _placement_code(m: CompiledMeasure, calendar: bool) -> int:
    if m.placement in ("timed", "stays"):
        if m.percentile is not None:
            return _MULTISET
        if m.window_conds:
            return _ANCHORED
        # a count or sum in a quarter or year is the sum of its months: keep months only
        return _MONTHLY if calendar and m.distinct_key is None else _TIMED
    if m.placement in ("snapshot", "duplicates"):
        return _SNAPSHOT
    return _PERIOD if m.placement == "period" else _ACTIVE


def _sort_group(group: Group) -> tuple[str, ...]:
    return tuple(str(x) for x in group)


_DATA_TAGS = frozenset(("b", "am", "d", "dc"))
"""Entries whose presence makes a group one "with data" (see :meth:`_StateIndex.counts`)."""


class _LiveGroups:
    """Per measure and group fields, each group's data entries (keys of ``_DATA_TAGS``),
    built with one scan and then kept up to date from the buckets the engine marks as
    touched (every bucket change marks its key)."""

    def __init__(self) -> None:
        self._by: dict[tuple[int, tuple[Any, ...]], dict[Group, set[Key]]] = {}
        self.windows = WindowGroups()

    @classmethod
    def build(cls, store: StateStore) -> _LiveGroups:
        live = cls()
        for key, _value in store.items():
            if key[0] in _DATA_TAGS:
                live._add(key)
            elif key[0] == "at":
                live.windows.add(key)
        return live

    def groups(self, index: int, fields: tuple[str, ...]) -> dict[Group, set[Key]]:
        return self._by.get((index, fields), {})

    def _add(self, key: Key) -> None:
        group = key[2]
        self.windows.add(key)
        self._by.setdefault((key[1], tuple(group[0::2])), {}).setdefault(group, set()).add(key)

    def _discard(self, key: Key) -> None:
        group = key[2]
        self.windows.discard(key)
        groups = self._by.get((key[1], tuple(group[0::2])))
        keys = None if groups is None else groups.get(group)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del groups[group]  # type: ignore[union-attr]

    def update(self, store: StateStore, touched: Iterable[tuple[str, int, Group, Any]]) -> None:
        for tag, index, group, wkey in touched:
            if tag == "b":
                keys: tuple[Key, ...] = (("b", index, group, wkey),)
            elif tag == "d":
                keys = (("d", index, group, wkey[1]), ("dc", index, group, wkey[1]))
            elif tag == "a":
                keys = (("am", index, group),)
                at = ("at", index, group, wkey[1])
                if store.get(at) is None:
                    self.windows.discard(at)
                else:
                    self.windows.add(at)
            else:
                continue
            for key in keys:
                if store.get(key) is None:
                    self._discard(key)
                else:
                    self._add(key)


class _StateIndex:
    """Which groups have data and the earliest window per kind: built once per report."""

    def __init__(self) -> None:
        self.groups: dict[int, set[Group]] = {}
        self.first: dict[tuple[int, Group, str], int] = {}

    def _first(self, key: tuple[int, Group, str], idx: int) -> None:
        current = self.first.get(key)
        if current is None or idx < current:
            self.first[key] = idx

    @staticmethod
    def counts(engine: Engine, key: Key, value: Any, as_of: int | None) -> bool:
        """Whether a data entry (a tag of ``_DATA_TAGS``) makes its group one with data at
        ``as_of`` (None: every contribution counts): not when all it holds is dated later."""
        tag = key[0]
        if value is None:
            return False
        if tag == "b":
            kind = key[3][0]
            return (
                as_of is None
                or kind == "current"
                or not engine.all_pending(key[1], key[2], key[3], value[1], as_of)
            )
        if tag == "am":
            return True
        day = key[3]
        if as_of is None or day < as_of // DAY_MS:
            return True
        if tag == "d":
            times = [t for ts in engine._day_times(key[1], key[2], day) for t in ts]
        else:
            anchored = bool(engine.measures[key[1]].window_conds)
            times = [slot[0] if anchored else slot for slot, _dv in value]
        return any(t <= as_of for t in times)

    @classmethod
    def build(
        cls, engine: Engine, as_of: int | None, measures: Collection[int] | None = None
    ) -> _StateIndex:
        """``as_of``: data dated after it is no data yet (None: every contribution counts).
        ``measures``: index only these (None: all)."""
        index = cls()
        cal = engine.calendar
        for key, value in engine.store.items():
            tag = key[0]
            if measures is not None and tag != "r" and tag != "o" and key[1] not in measures:
                continue
            if tag not in _DATA_TAGS or not cls.counts(engine, key, value, as_of):
                continue
            mi, group = key[1], key[2]
            index.groups.setdefault(mi, set()).add(group)
            if tag == "b":
                kind, idx = key[3]
                if kind == "current":
                    continue
                if engine._place[mi] in _BY_MONTH and kind == "month":
                    for k, _per in engine._kind_months:
                        index._first((mi, group, k), cal.window_index(k, idx))
                else:
                    index._first((mi, group, kind), idx)
            elif tag == "am":
                starts = [mo for mo, (s, _e) in value.items() if s]
                if starts:
                    first_month = min(starts)
                    for kind in engine.kinds:
                        index._first(
                            (mi, group, kind), cal.index_of(kind, cal.month_start(first_month))
                        )
        return index
