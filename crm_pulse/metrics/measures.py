"""Compiled measures: what one record contributes to each measure.

A record's *contributions* are a mapping ``(measure index, group, slot, distinct value) -> weight``:

* ``group`` is a flat tuple of field/value pairs, ``()`` for company-wide,
  ``("owner_id", "u3")`` per rep;
* ``slot`` places the contribution in time: an epoch-ms time (``at:``), ``(time, values)`` when
  the measure compares fields with the window, ``None`` for snapshots, ``(start, end)`` for
  ``active`` intervals, ``(period kind, start date)`` for ``period`` records;
* ``distinct value`` is the value counted by ``distinct`` / ``duplicates`` measures, else None;
* ``weight`` is an integer: 1 for counts, micro-units or milliseconds for sums.

The engine retracts a record's old contributions and adds its new ones; the reference evaluator
computes measures without this module, from the definitions themselves.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import pairwise
from typing import Any

from .calendar import WindowSpec
from .definitions import PERCENTILES, DurationSum, MeasureDef, WeightsSum
from .events import MICRO, FieldType, ObjectSchema, parse_amount
from .filters import Predicate, WindowCondition, compile_where, type_constant

__all__ = [
    "DURATION_MS",
    "CompiledMeasure",
    "ContributionKey",
    "Contributions",
    "Group",
    "StageVersion",
    "compile_measure",
    "contributor",
    "normalizer",
    "percentile",
    "stays_of",
]

Group = tuple[str, ...]
ContributionKey = tuple[int, Group, Any, Any]
Contributions = dict[ContributionKey, int]
StageVersion = tuple[Any, ...]
"""(version, stage, stage entered at ms, canonical JSON) of one upsert of a record."""

DURATION_MS = {"ms": 1, "seconds": 1000, "minutes": 60_000, "hours": 3_600_000, "days": 86_400_000}


def normalizer(kind: str) -> Callable[[Any], str | None]:
    """How ``duplicates`` measures normalise a value before comparing."""

    def email(value: Any) -> str | None:
        text = str(value).strip().lower()
        return text if "@" in text else None

    def domain(value: Any) -> str | None:
        text = str(value).strip().lower()
        for prefix in ("https://", "http://"):
            text = text.removeprefix(prefix)
        text = text.split("/", 1)[0].removeprefix("www.").rstrip(".")
        return text or None

    def lower(value: Any) -> str | None:
        return str(value).strip().lower() or None

    def none(value: Any) -> str | None:
        return str(value)

    return {"email": email, "domain": domain, "lower": lower, "none": none}[kind]


def percentile(values: Mapping[int, int], p: int) -> Fraction | None:
    """The ``p``-th percentile of a multiset ``{value: count}`` (counts <= 0 are absent).

    Linear interpolation between closest ranks, as spreadsheets' PERCENTILE.INC and MEDIAN do:
    with the n values sorted x[0] <= ... <= x[n-1], h = (n - 1) * p / 100 and the result is
    x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]). The median of 10 and 20 is
    15; p90 of 1..10 is 9.1. None when there are no values.
    """
    items = sorted((v, c) for v, c in values.items() if c > 0)
    n = sum(c for _v, c in items)
    if n == 0:
        return None
    h = Fraction((n - 1) * p, 100)
    rank = h.numerator // h.denominator
    low = high = None
    seen = 0
    for value, count in items:
        seen += count
        if low is None and seen > rank:
            low = value
        if seen > rank + 1 or (seen > rank and h == rank):
            high = value
            break
    assert low is not None
    if high is None:
        high = low
    return low + (h - rank) * (high - low)


def stays_of(history: Sequence[StageVersion]) -> list[tuple[Any, int, int]]:
    """Stays ``(stage, entered_at, left_at)`` from a record's versions in version order.

    Consecutive versions with the same stage form one stay; its entry time is the
    ``stage_entered_at`` of its last version, and it ends when a version shows another stage, at
    that stay's entry time. Stays whose times are unknown, or end before they start, are left out.
    """
    runs: list[tuple[Any, Any]] = []
    for version_entry in history:
        stage, entered = version_entry[1], version_entry[2]
        if runs and runs[-1][0] == stage:
            runs[-1] = (stage, entered)
        else:
            runs.append((stage, entered))
    out: list[tuple[Any, int, int]] = []
    for (stage, entered), (_next, left) in pairwise(runs):
        if stage is not None and entered is not None and left is not None and left >= entered:
            out.append((stage, entered, left))
    return out


@dataclass
class CompiledMeasure:
    """A measure ready to compute contributions; built by :func:`compile_measure`."""

    name: str
    index: int
    definition: MeasureDef
    object: str
    placement: str
    aggregate: str
    scale: int
    accepts: Predicate
    window_conds: tuple[WindowCondition, ...]
    weight: Callable[[Mapping[str, Any]], int | None]
    reads: frozenset[str]
    groups: list[tuple[str, ...]] = field(default_factory=list)
    distinct_key: Callable[[Mapping[str, Any]], Any] | None = None
    among: CompiledMeasure | None = None
    """The ``active`` measure whose members (by record id) a distinct count is narrowed to."""
    legs: list[CompiledMeasure] = field(default_factory=list)
    """``also:`` records, one compiled leg per object: same index, so their values land in
    this measure's buckets (a value counts once whichever records give it)."""

    @property
    def parts(self) -> tuple[CompiledMeasure, ...]:
        """This measure and its ``also:`` legs: every (object, filter, time, value) it reads."""
        return (self, *self.legs)

    @property
    def is_snapshot(self) -> bool:
        return self.placement in ("snapshot", "duplicates")

    @property
    def threshold(self) -> int:
        """How many records a distinct value needs to count (``at_least``, default 1)."""
        return self.definition.at_least or 1

    @property
    def percentile(self) -> int | None:
        """50 for ``median``, 90 for ``p90``; None for other aggregates."""
        return PERCENTILES.get(self.aggregate)

    @property
    def calendar_only(self) -> bool:
        """Records matching a calendar period exactly (quotas) have no rolling windows."""
        period = self.definition.period
        return period is not None and period.match == "exact"

    @property
    def detailed_days(self) -> bool:
        """Rolling windows read each contribution (a distinct value, fields compared with the
        window) rather than day sums."""
        return self.aggregate == "distinct" or bool(self.window_conds)

    def supports(self, spec: WindowSpec) -> bool:
        if spec.kind == "current":
            return self.is_snapshot
        if self.is_snapshot:
            return False
        if self.placement == "period" and spec.kind in ("day", "week"):
            return False  # quotas and spend describe months, quarters and years
        return spec.is_calendar or not self.calendar_only

    def slot(self, v: Mapping[str, Any]) -> Any:
        """Where in time the record ``v`` counts; None means it counts nowhere (for timed kinds)."""
        d = self.definition
        placement = self.placement
        if placement in ("timed", "stays"):
            t = v.get(d.at) if d.at else None
            if t is None:
                return None
            if self.window_conds:
                return (t, tuple(v.get(c.field) for c in self.window_conds))
            return t
        if placement == "active":
            assert d.active is not None
            a = v.get(d.active.start)
            b = v.get(d.active.end) if d.active.end else None
            if a is None or (b is not None and b <= a):
                return None
            return (a, b)
        if placement == "period":
            assert d.period is not None
            kind, start = v.get(d.period.kind), v.get(d.period.start)
            if kind is None or start is None:
                return None
            return (kind, start)
        return ()  # snapshots: a slot that is not None

    def contribute(self, v: Mapping[str, Any], out: Contributions) -> None:
        """Add what one (sub-)record ``v`` contributes to ``out`` (see :func:`contributor`)."""
        contributor(self)(v, out)


_NOWHERE: Any = object()


def contributor(m: CompiledMeasure) -> Callable[[Mapping[str, Any], Contributions], None]:
    """``m.contribute`` as one closure with everything it reads bound: the engine's hot path.

    Built once per engine (after the catalog has set ``m.groups``).
    """
    accepts = m.accepts
    index = m.index
    distinct = m.distinct_key
    weight_of = m.weight
    count = m.definition.sum is None and distinct is None  # weight 1 without a call
    slot_of = _slot_fn(m)
    # the common case read inline: a time field places the contribution
    at = m.definition.at if m.placement in ("timed", "stays") and not m.window_conds else None
    everything = not m.definition.where  # no condition: skip calling accepts
    company = () in m.groups
    singles = tuple(g[0] for g in m.groups if len(g) == 1)
    multis = tuple(g for g in m.groups if len(g) > 1)

    def contribute(v: Mapping[str, Any], out: Contributions) -> None:
        if not everything and not accepts(v):
            return
        if at:
            slot = v.get(at)
            if slot is None:
                return
        else:
            slot = slot_of(v)
            if slot is _NOWHERE:
                return
        dv: Any = None
        if count:
            weight = 1
        elif distinct is not None:
            dv = distinct(v)
            if dv is None:
                return
            weight = 1
        else:
            maybe = weight_of(v)
            if maybe is None:
                return
            weight = maybe
        if company:
            key: ContributionKey = (index, (), slot, dv)
            out[key] = out.get(key, 0) + weight
        for f in singles:
            value = v.get(f)
            if value is not None:
                key = (index, (f, value), slot, dv)
                out[key] = out.get(key, 0) + weight
        for fields in multis:
            parts: list[Any] = []
            for f in fields:
                value = v.get(f)
                if value is None:
                    break
                parts.append(f)
                parts.append(value)
            else:
                key = (index, tuple(parts), slot, dv)
                out[key] = out.get(key, 0) + weight

    return contribute


def _slot_fn(m: CompiledMeasure) -> Callable[[Mapping[str, Any]], Any]:
    """The contribution's slot key from a record, ``_NOWHERE`` when it counts nowhere.

    Same as :meth:`CompiledMeasure.slot` except that snapshots get ``None`` (no time).
    """
    d = m.definition
    placement = m.placement
    if placement in ("timed", "stays") and not m.window_conds:
        at = d.at
        if not at:
            return lambda v: _NOWHERE

        def timed(v: Mapping[str, Any]) -> Any:
            t = v.get(at)
            return _NOWHERE if t is None else t

        return timed
    if placement in ("snapshot", "duplicates"):
        return lambda v: None

    def general(v: Mapping[str, Any]) -> Any:
        slot = m.slot(v)
        return _NOWHERE if slot is None else slot

    return general


def _weight_fn(
    d: MeasureDef, schema: ObjectSchema | None, params: Mapping[str, float]
) -> tuple[Callable[[Mapping[str, Any]], int | None], int]:
    total = d.values
    if total is None:
        return (lambda v: 1), 1
    if isinstance(total, str):
        name = total
        kind = schema.get(name) if schema else None
        if kind not in (None, FieldType.AMOUNT, FieldType.NUMBER):
            raise ValueError(f"{d.aggregate}: {name!r} is not a number or amount field")

        def field_value(v: Mapping[str, Any]) -> int | None:
            x = v.get(name)
            if x is None or isinstance(x, int):
                return x
            try:
                return parse_amount(x)
            except ValueError:
                return None

        return field_value, MICRO
    if isinstance(total, DurationSum):
        start, end = total.duration

        def duration(v: Mapping[str, Any]) -> int | None:
            a, b = v.get(start), v.get(end)
            if not isinstance(a, int) or not isinstance(b, int):
                return None
            return b - a

        return duration, DURATION_MS[total.unit]
    assert isinstance(total, WeightsSum)
    by = total.weights.field
    number = FieldType.NUMBER
    weights: dict[Any, int] = {
        k: type_constant(w, number, params) for k, w in total.weights.values.items()
    }
    default: int = type_constant(total.weights.default, number, params)
    return (lambda v: weights.get(v.get(by), default)), MICRO


def compile_measure(
    name: str,
    index: int,
    d: MeasureDef,
    schema: ObjectSchema | None,
    params: Mapping[str, float],
) -> CompiledMeasure:
    """Compile one definition; raises ``ValueError`` naming the offending part."""
    accepts, window_conds = compile_where(d.where, schema, params)
    weight, scale = _weight_fn(d, schema, params)
    distinct_key: Callable[[Mapping[str, Any]], Any] | None = None
    aggregate: str = d.aggregate
    if d.distinct is not None:
        dfield = d.distinct
        distinct_key = lambda v: v.get(dfield)  # noqa: E731
    if d.aggregate in PERCENTILES:
        # each record contributes its value, counted once: buckets keep multisets of values
        if window_conds:
            raise ValueError(f"a '{d.aggregate}' measure cannot compare fields with the window")
        distinct_key = weight
        weight = lambda v: 1  # noqa: E731
    if d.duplicates is not None:
        dup_field, norm = d.duplicates.field, normalizer(d.duplicates.normalize)

        def dup_key(v: Mapping[str, Any]) -> Any:
            raw = v.get(dup_field)
            if raw is None:
                return None
            key = norm(raw)
            return None if key is None else sys.intern(key)

        distinct_key = dup_key
        aggregate = "duplicates"
    reads = set(d.where) | {d.at or ""} | {c.field for c in window_conds}
    if d.active is not None:
        reads |= {d.active.start, d.active.end or ""}
    if d.period is not None:
        reads |= {d.period.kind, d.period.start}
    if d.duplicates is not None:
        reads.add(d.duplicates.field)
    if isinstance(d.values, str):
        reads.add(d.values)
    elif isinstance(d.values, DurationSum):
        reads |= set(d.values.duration)
    elif isinstance(d.values, WeightsSum):
        reads.add(d.values.weights.field)
    if d.distinct:
        reads.add(d.distinct)
    reads.discard("")
    return CompiledMeasure(
        name=name,
        index=index,
        definition=d,
        object=d.object,
        placement=d.placement,
        aggregate=aggregate,
        scale=scale,
        accepts=accepts,
        window_conds=window_conds,
        weight=weight,
        reads=frozenset(reads),
        distinct_key=distinct_key,
    )
