"""Phase 2 of an event: contribution changes added to the buckets of their windows (months,
calendar kinds, days, exact times, distinct values, periods, ``active`` intervals)."""

from __future__ import annotations

from typing import Any

from ..calendar import (
    DAY_MS,
    Window,
    WindowSpec,
)
from ..measures import CompiledMeasure, ContributionKey, Group
from ..members import count_in
from ..state import Key
from .core import (
    _ANCHORED,
    _CURRENT_KEY,
    _MONTHLY,
    _MULTISET,
    _PERIOD,
    _SNAPSHOT,
    _TIMED,
    HOUR_MS,
    Change,
    EngineCore,
)


class Buckets(EngineCore):
    """Phase 2: adds contribution changes to the buckets of their windows."""

    def _apply_changes(self, changes: list[Change]) -> None:
        """Add each change to its buckets: inline, the month bucket of a count or sum, of a
        percentile's count (and its multiset of values) and the ``current`` bucket of a
        snapshot count or sum; the rest through :meth:`_apply_delta`."""
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
        store = self.store
        for ckey, delta, dn in changes:
            index, group, slot, dv = ckey
            code = place[index]
            if code != _MONTHLY and code != _MULTISET:
                if code == _SNAPSHOT and dv is None:  # a count or sum now: one bucket
                    bkey = ("b", index, group, _CURRENT_KEY)
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
                            store.delete(bkey)
                    dirty(bkey)
                else:
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
                    store.delete(bkey)
            dirty(bkey)
            if fine:
                for fkey in self._fine_keys(slot):
                    self._add_sum(index, group, fkey, delta, dn)
            if slot > future:
                self.pending.add(index, group, slot, slot, dv, delta, dn)
            if daily[index]:
                self._add_day(index, group, slot, delta, dn)
            if code == _MULTISET:  # the month's multiset of values; per day, (time, value)
                count_in(store, ("p", index, group, wkey[1]), dv, delta)
                if daily[index] or fine:
                    count_in(store, ("pd", index, group, slot // DAY_MS), (slot, dv), delta)

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
