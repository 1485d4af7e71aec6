"""The reference evaluator: a deliberately simple batch recompute, used as the tests' oracle.

It keeps nothing incremental. It reduces the events to the final state of every record (the
event with the greatest version wins, ties broken as in metrics-spec section 6; a delete
removes the record), and answers each question
("measure m, group g, window w") by looking at every record again, placing times in windows with
plain ``datetime`` arithmetic rather than the engine's calendar tables. It shares only the
definitions, ``where`` predicates and the report's row rules with the engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

from .calendar import Calendar, Window, WindowSpec
from .catalog import Catalog
from .definitions import PERCENTILES, DurationSum, WeightsSum
from .events import Event, RecordKey
from .filters import type_constant
from .measures import CompiledMeasure, Group, normalizer
from .modifier import CHANGED_AT, CHANGED_BY, newest_change
from .report import MetricValue, report

__all__ = ["RecordState", "Reference", "reference_report"]

RecordState = tuple[RecordKey, dict[str, Any], list[dict[str, Any]]]
"""(key, typed values, values of each version in version order) of a record that exists."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONTHS = {"month": 1, "quarter": 3, "year": 12}
_CALENDAR = ("day", "week", *_MONTHS)


class Reference:
    """Final record states, and measures recomputed from them on demand."""

    def __init__(
        self,
        catalog: Catalog,
        events: Iterable[Event],
        kinds: Iterable[str] = tuple(_MONTHS),
        as_of: int | None = None,
    ) -> None:
        self.catalog = catalog
        self.as_of = as_of  # records dated after it count nowhere yet
        self.kinds = tuple(kinds)
        self.calendar: Calendar = catalog.calendar
        self.zone = catalog.calendar.zone
        self.records: dict[str, list[RecordState]] = {}
        latest: dict[RecordKey, Event] = {}
        upserts: dict[RecordKey, dict[int, Event]] = {}
        deletes: dict[RecordKey, int] = {}
        changes: dict[RecordKey, list[Event]] = {}  # upserts that name who changed the record
        for e in events:
            k = e.key
            if k not in latest or _wins(e, latest[k]):
                latest[k] = e
            if e.op == "upsert":
                if e.values.get(CHANGED_BY) is not None:
                    changes.setdefault(k, []).append(e)
                same = upserts.setdefault(k, {})
                if e.version not in same or e.canonical > same[e.version].canonical:
                    same[e.version] = e
            else:
                deletes[k] = max(deletes.get(k, e.version), e.version)
        for k, e in latest.items():
            if e.op == "delete":
                continue
            floor = deletes.get(k)
            versions = sorted(v for v in upserts.get(k, {}) if floor is None or v > floor)
            history = [upserts[k][v].values for v in versions]
            values = e.values
            # who changed it last: the newest upsert that says (an own write-back does not)
            by, at = newest_change(changes.get(k, ()), floor)
            if (by, at) != (values.get(CHANGED_BY), values.get(CHANGED_AT)):
                values = {**values, CHANGED_BY: by, CHANGED_AT: at}
            self.records.setdefault(k[1], []).append((k, values, history))

    @classmethod
    def of_states(
        cls, catalog: Catalog, states: Iterable[RecordState], as_of: int | None = None
    ) -> Reference:
        """A reference over record states known already (a running deployment's): each is
        (key, typed values, the values of its versions in version order, for stage stays)."""
        ref = cls(catalog, (), as_of=as_of)
        for state in states:
            ref.records.setdefault(state[0][1], []).append(state)
        return ref

    # ------------------------------------------------------------ plain calendar arithmetic

    def _local(self, t: int) -> datetime:
        return (_EPOCH + timedelta(milliseconds=t)).astimezone(self.zone)

    def _index(self, kind: str, t: int) -> int:
        """The window of ``kind`` whose [start, end) holds ``t``: the local date's, unless a
        clock set back across midnight shows an earlier date after the next window began."""
        i = self._local_index(kind, t)
        while t < self._start(kind, i):
            i -= 1
        while t >= self._start(kind, i + 1):
            i += 1
        return i

    def _local_index(self, kind: str, t: int) -> int:
        d = self._local(t)
        if kind == "day":
            return d.date().toordinal()
        if kind == "week":  # ISO weeks: Monday to Sunday
            return (d.date() - timedelta(days=d.weekday())).toordinal() // 7
        if kind == "month":
            return d.year * 12 + d.month - 1
        # fiscal years start in month s and are named by the calendar year they end in
        s = self.catalog.calendar.fiscal_year_start
        fiscal_year = d.year + (1 if s != 1 and d.month >= s else 0)
        months_in = (d.month - s) % 12
        return fiscal_year * 4 + months_in // 3 if kind == "quarter" else fiscal_year

    def _ms(self, d: datetime) -> int:
        return (d - _EPOCH) // timedelta(milliseconds=1)

    def _start(self, kind: str, index: int) -> int:
        if kind in ("day", "week"):
            day = date.fromordinal(index if kind == "day" else index * 7 + 1)
            return self._ms(datetime(day.year, day.month, day.day, tzinfo=self.zone))
        if kind == "month":
            year, month = divmod(index, 12)
            return self._ms(datetime(year, month + 1, 1, tzinfo=self.zone))
        s = self.catalog.calendar.fiscal_year_start
        fiscal_year, quarter = divmod(index, 4) if kind == "quarter" else (index, 0)
        months = s - 1 + 3 * quarter
        year = fiscal_year - (1 if s != 1 else 0) + months // 12
        return self._ms(datetime(year, months % 12 + 1, 1, tzinfo=self.zone))

    def _period(self, kind: str, day: date) -> tuple[int, int]:
        start = datetime(day.year, day.month, day.day, tzinfo=self.zone)
        months = day.month - 1 + _MONTHS[kind]
        end = datetime(day.year + months // 12, months % 12 + 1, 1, tzinfo=self.zone)
        return self._ms(start), self._ms(end)

    # ------------------------------------------------------------ records of a measure

    def _rows(self, m: CompiledMeasure) -> Iterator[dict[str, Any]]:
        for _key, row in self.keyed_rows(m):
            yield row

    def keyed_rows(self, m: CompiledMeasure) -> Iterator[tuple[RecordKey, dict[str, Any]]]:
        """The (sub-)records a measure looks at, with the key of the record each comes from."""
        stays = m.definition.stays
        for key, values, history in self.records.get(m.object, []):
            if stays is None:
                yield key, values
                continue
            # stays: walk the versions in order, one stay per run of equal stages
            runs: list[list[Any]] = []
            for version in history:
                stage = version.get(stays.field)
                entered = version.get(stays.entered)
                if runs and runs[-1][0] == stage:
                    runs[-1][1] = entered
                else:
                    runs.append([stage, entered])
            for i in range(len(runs) - 1):
                stage, entered = runs[i]
                left = runs[i + 1][1]
                if stage is None or entered is None or left is None or left < entered:
                    continue
                yield key, {**values, stays.field: stage, "entered_at": entered, "left_at": left}

    def _part_rows(
        self, m: CompiledMeasure
    ) -> Iterator[tuple[CompiledMeasure, RecordKey, dict[str, Any]]]:
        """The rows of a measure and of its ``also:`` legs, each with the part that reads it."""
        for part in m.parts:
            for key, row in self.keyed_rows(part):
                yield part, key, row

    def _group(self, row: dict[str, Any], fields: tuple[str, ...]) -> Group | None:
        out: list[Any] = []
        for f in fields:
            if row.get(f) is None:
                return None
            out += [f, row[f]]
        return tuple(out)

    def _weight(self, m: CompiledMeasure, row: dict[str, Any]) -> int | None:
        s = m.definition.values
        if s is None:
            return 1
        if isinstance(s, str):
            value = row.get(s)
            return value if isinstance(value, int) else None
        if isinstance(s, DurationSum):
            a, b = row.get(s.duration[0]), row.get(s.duration[1])
            if not isinstance(a, int) or not isinstance(b, int):
                return None
            return b - a
        assert isinstance(s, WeightsSum)
        w = s.weights
        by = row.get(w.field)
        raw = w.values.get(str(by), w.default) if by is not None else w.default
        weight: int = type_constant(raw, None, self.catalog.definitions.params)
        return weight

    def _in_window(
        self, m: CompiledMeasure, row: dict[str, Any], window: Window, as_of: int
    ) -> bool:
        d = m.definition
        kind = window.spec.kind
        if m.is_snapshot:
            return kind == "current"
        if d.period is not None:
            pkind, start = row.get(d.period.kind), row.get(d.period.start)
            if pkind is None or start is None:
                return False
            if kind == "rolling":  # the whole period within the rolling window
                p_start, p_end = self._period(pkind, start)
                lo = as_of - window.spec.days * 86_400_000
                return d.period.match == "within" and lo <= p_start and p_end <= as_of
            w_start, w_end = self._start(kind, window.index), self._start(kind, window.index + 1)
            if d.period.match == "exact":
                return pkind == kind and self._period(kind, start)[0] == w_start
            p_start, p_end = self._period(pkind, start)
            return w_start <= p_start and p_end <= w_end
        t = row.get(d.at) if d.at else None
        if t is None:
            return False
        if t > as_of:
            return False  # its time has not come yet
        if kind == "rolling":
            lo = as_of - window.spec.days * 86_400_000
            if not lo < t <= as_of:
                return False
            return all(c.holds(row.get(c.field), lo, as_of) for c in m.window_conds)
        w_start, w_end = self._start(kind, window.index), self._start(kind, window.index + 1)
        if not w_start <= t < w_end:
            return False
        return all(c.holds(row.get(c.field), w_start, w_end) for c in m.window_conds)

    def raw(
        self, m: CompiledMeasure, group: Group, window: Window, as_of: int
    ) -> int | Fraction | None:
        fields = tuple(group[0::2])
        d = m.definition
        if d.aggregate in PERCENTILES:
            ranked = sorted(
                w
                for row in self._rows(m)
                if m.accepts(row)
                and self._group(row, fields) == group
                and self._in_window(m, row, window, as_of)
                and (w := self._weight(m, row)) is not None
            )
            if not ranked:
                return None
            h = Fraction((len(ranked) - 1) * PERCENTILES[d.aggregate], 100)
            below = ranked[int(h)]
            above = ranked[min(int(h) + 1, len(ranked) - 1)]
            return below + (h - int(h)) * (above - below)
        if d.active is not None:
            if window.spec.kind in _CALENDAR:
                start = self._start(window.spec.kind, window.index)
                end = self._start(window.spec.kind, window.index + 1)
                if start <= as_of < end:
                    end = as_of
            else:
                start, end = as_of - window.spec.days * 86_400_000, as_of
            t = start if d.active.when == "window_start" else end
            n = 0
            for row in self._rows(m):
                if not m.accepts(row) or self._group(row, fields) != group:
                    continue
                a = row.get(d.active.start)
                b = row.get(d.active.end) if d.active.end else None
                if a is not None and a < t and (b is None or b >= t) and (b is None or b > a):
                    n += 1
            return n
        total = 0
        distinct: dict[Any, int] = {}
        for part, _key, row in self._part_rows(m):
            if not part.accepts(row) or self._group(row, fields) != group:
                continue
            if not self._in_window(part, row, window, as_of):
                continue
            if d.duplicates is not None:
                raw = row.get(d.duplicates.field)
                key = None if raw is None else normalizer(d.duplicates.normalize)(raw)
                if key is not None:
                    distinct[key] = distinct.get(key, 0) + 1
                continue
            counted = part.definition.distinct
            if counted is not None:
                if row.get(counted) is not None:
                    distinct[row[counted]] = distinct.get(row[counted], 0) + 1
                continue
            weight = self._weight(m, row)
            if weight is not None:
                total += weight
        if d.duplicates is not None:
            return sum(c for c in distinct.values() if c >= 2)
        if d.distinct is not None:
            k = d.at_least or 1
            members = None if m.among is None else self._members(m.among, group, window, as_of)
            return sum(
                1 for v, n in distinct.items() if n >= k and (members is None or v in members)
            )
        return total

    def _members(self, m: CompiledMeasure, group: Group, window: Window, as_of: int) -> set[Any]:
        """Ids of the records the ``active`` measure ``m`` counts in this window."""
        return {key[2] for key, _ in self.contributions(m, group, window, as_of)}

    def contributions(
        self, m: CompiledMeasure, group: Group, window: Window, as_of: int
    ) -> list[tuple[RecordKey, Any]]:
        """What each record gives a measure in one window (``crm-pulse explain``): its weight
        in the measure's scale for counts and sums, 1 for ``active`` and duplicate records, its
        value for ``distinct`` and percentile measures. Sub-records (stays) come one by one."""
        fields = tuple(group[0::2])
        d = m.definition
        out: list[tuple[RecordKey, Any]] = []
        if d.active is not None:
            if window.spec.kind in _CALENDAR:
                start = self._start(window.spec.kind, window.index)
                end = self._start(window.spec.kind, window.index + 1)
                end = as_of if start <= as_of < end else end
            else:
                start, end = as_of - window.spec.days * 86_400_000, as_of
            t = start if d.active.when == "window_start" else end
            for key, row in self.keyed_rows(m):
                if not m.accepts(row) or self._group(row, fields) != group:
                    continue
                a = row.get(d.active.start)
                b = row.get(d.active.end) if d.active.end else None
                if a is not None and a < t and (b is None or b >= t) and (b is None or b > a):
                    out.append((key, 1))
            return out
        dups: dict[Any, list[RecordKey]] = {}
        for part, key, row in self._part_rows(m):
            if not part.accepts(row) or self._group(row, fields) != group:
                continue
            if not self._in_window(part, row, window, as_of):
                continue
            if d.duplicates is not None:
                raw = row.get(d.duplicates.field)
                norm = None if raw is None else normalizer(d.duplicates.normalize)(raw)
                if norm is not None:
                    dups.setdefault(norm, []).append(key)
            elif part.definition.distinct is not None:
                found = row.get(part.definition.distinct)
                if found is not None:
                    dups.setdefault(found, []).append(key)
            else:
                weight = self._weight(m, row)
                if weight is not None:
                    out.append((key, weight))
        if d.duplicates is not None:
            for keys in dups.values():
                if len(keys) >= 2:
                    out.extend((k, 1) for k in keys)
        elif d.distinct is not None:  # each record with the value it counts
            members = None if m.among is None else self._members(m.among, group, window, as_of)
            for value, keys in dups.items():
                if len(keys) >= (d.at_least or 1) and (members is None or value in members):
                    out.extend((k, value) for k in keys)
        return out

    def _contributes(self, m: CompiledMeasure, row: dict[str, Any]) -> bool:
        """Would this row count anywhere at all? (which groups have data)"""
        d = m.definition
        if not m.accepts(row):
            return False
        if d.duplicates is not None:
            raw = row.get(d.duplicates.field)
            return raw is not None and normalizer(d.duplicates.normalize)(raw) is not None
        if d.distinct is not None and row.get(d.distinct) is None:
            return False
        if d.distinct is None and self._weight(m, row) is None:
            return False
        if d.active is not None:
            a, b = row.get(d.active.start), row.get(d.active.end) if d.active.end else None
            return a is not None and (b is None or b > a)
        if d.period is not None:
            return row.get(d.period.kind) is not None and row.get(d.period.start) is not None
        if d.at:
            t = row.get(d.at)
            return t is not None and (self.as_of is None or t <= self.as_of)
        return True

    def groups_with_data(self, m: CompiledMeasure, fields: tuple[str, ...]) -> Iterator[Group]:
        seen: set[Group] = set()
        for part, _key, row in self._part_rows(m):
            group = self._group(row, fields)
            if group is None or group in seen or not self._contributes(part, row):
                continue
            # only rows that land in some calendar window count as data
            calendar_bound = part.window_conds or part.definition.period is not None
            if calendar_bound and not any(self._first_windows(part, row).values()):
                continue
            seen.add(group)
            yield group

    def _first_windows(self, m: CompiledMeasure, row: dict[str, Any]) -> dict[str, int | None]:
        d = m.definition
        out: dict[str, int | None] = {}
        for kind in self.kinds:
            idx: int | None = None
            if d.active is not None:
                idx = self._index(kind, row[d.active.start])
            elif d.period is not None:
                pkind, start = row[d.period.kind], row[d.period.start]
                if d.period.match == "exact":
                    if pkind == kind:
                        p_start = self._period(kind, start)[0]
                        i = self._index(kind, p_start)
                        idx = i if self._start(kind, i) == p_start else None
                else:
                    p_start, p_end = self._period(pkind, start)
                    i = self._index(kind, p_start)
                    idx = i if p_end <= self._start(kind, i + 1) else None
            elif d.at:
                t = row[d.at]
                i = self._index(kind, t)
                w = Window(WindowSpec(kind), i)
                idx = i if self._in_window(m, row, w, t) else None
            out[kind] = idx
        return out

    def first_index(self, m: CompiledMeasure, group: Group, kind: str) -> int | None:
        fields = tuple(group[0::2])
        best: int | None = None
        for part, _key, row in self._part_rows(m):
            if self._group(row, fields) != group or not self._contributes(part, row):
                continue
            idx = self._first_windows(part, row).get(kind)
            if idx is not None and (best is None or idx < best):
                best = idx
        return best


def _wins(e: Event, old: Event) -> bool:
    """The tie rule, written out: greater version; at equal versions a delete, then the
    upsert whose canonical JSON is greater."""
    if e.version != old.version:
        return e.version > old.version
    if old.op == "delete":
        return False
    return e.op == "delete" or e.canonical > old.canonical


def reference_report(
    catalog: Catalog,
    events: Iterable[Event],
    as_of: int,
    windows: Iterable[WindowSpec],
    *,
    keep_null: bool = False,
) -> list[MetricValue]:
    """Every metric row recomputed from the final record states."""
    specs = [catalog.calendar.spec(s) for s in windows]
    ref = Reference(catalog, events, kinds=[s.kind for s in specs if s.is_calendar], as_of=as_of)
    return report(catalog, ref, as_of, specs, keep_null=keep_null)
