"""From measure values to metric rows: shared by the engine and the reference evaluator.

A :class:`MeasureSource` answers "what is measure m for group g in window w?" (the engine from
its incremental state, the reference by recomputing). This module evaluates each metric's
expression over those answers and decides which rows exist (metrics-spec section 5): for each
group with data, every calendar window from the earliest one that has data up to the one holding
the as-of time; one ``current`` row for snapshot metrics; one row per rolling window.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

from .calendar import CURRENT, Calendar, Window, WindowSpec
from .catalog import Catalog, CompiledMetric
from .measures import CompiledMeasure, Group

__all__ = [
    "MeasureSource",
    "MetricValue",
    "evaluate",
    "group_dict",
    "json_number",
    "report",
    "window_end",
]


@dataclass(frozen=True)
class MetricValue:
    """One number: a metric in a window for a group (``value`` None: denominator 0)."""

    metric: str
    window: Window
    group: Group
    value: Fraction | None

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "window": self.window.label,
            "group": group_dict(self.group),
            "value": json_number(self.value),
        }


def group_dict(group: Group) -> dict[str, Any]:
    return dict(zip(group[0::2], group[1::2], strict=True))


def json_number(value: Fraction | None) -> int | float | None:
    """An exact fraction as JSON: an int when whole, else the nearest float."""
    if value is None:
        return None
    if value.denominator == 1:
        return int(value.numerator)
    return float(value)


class MeasureSource(Protocol):
    calendar: Calendar

    def raw(
        self, m: CompiledMeasure, group: Group, window: Window, as_of: int
    ) -> int | Fraction | None:
        """The measure's value before dividing by its scale (None: it has none, a percentile
        of no values)."""

    def groups_with_data(self, m: CompiledMeasure, fields: tuple[str, ...]) -> Iterable[Group]:
        """Groups over ``fields`` in which the measure has any contribution."""

    def first_index(self, m: CompiledMeasure, group: Group, kind: str) -> int | None:
        """Index of the earliest ``kind`` window in which the measure has data for ``group``."""


def window_end(calendar: Calendar, window: Window, as_of: int) -> tuple[int, int]:
    """[start, end) of a window as seen at ``as_of``: the open window ends at the as-of time."""
    if window.spec.kind == "rolling":
        return as_of - window.spec.days * 86_400_000, as_of
    start, end = calendar.bounds(window)
    if start <= as_of < end:
        end = as_of
    return start, end


def evaluate(
    catalog: Catalog,
    source: MeasureSource,
    metric: CompiledMetric,
    group: Group,
    window: Window,
    as_of: int,
) -> Fraction | None:
    values: dict[str, Fraction | None] = dict(catalog.params)
    for m in metric.measures:
        raw = source.raw(m, group, window, as_of)
        values[m.name] = None if raw is None else Fraction(raw, m.scale)
    return metric.expression.evaluate(values)


def report(
    catalog: Catalog,
    source: MeasureSource,
    as_of: int,
    specs: Sequence[WindowSpec],
    *,
    keep_null: bool = False,
) -> list[MetricValue]:
    """Every row of every metric, sorted by metric, group, window."""
    cal = catalog.calendar
    rows: list[MetricValue] = []
    for metric in catalog.metrics.values():
        for fields in metric.groups:
            groups: set[Group] = set()
            for m in metric.measures:
                groups.update(source.groups_with_data(m, fields))
            if metric.is_current and fields == ():
                groups.add(())
            for group in sorted(groups, key=_sort_key):
                for window in _windows(cal, source, metric, group, as_of, specs):
                    value = evaluate(catalog, source, metric, group, window, as_of)
                    if value is not None or keep_null:
                        rows.append(MetricValue(metric.name, window, group, value))
    from .goals import goal_rows

    rows.extend(r for r in goal_rows(catalog, source, as_of) if r.value is not None or keep_null)
    return rows


def _sort_key(group: Group) -> tuple[str, ...]:
    return tuple(str(x) for x in group)


def _windows(
    cal: Calendar,
    source: MeasureSource,
    metric: CompiledMetric,
    group: Group,
    as_of: int,
    specs: Sequence[WindowSpec],
) -> list[Window]:
    if metric.is_current:
        return [Window(CURRENT)]
    out: list[Window] = []
    for spec in specs:
        if not metric.supports(spec):
            continue
        if spec.kind == "rolling":
            out.append(Window(spec))
            continue
        firsts = [source.first_index(m, group, spec.kind) for m in metric.measures]
        known = [f for f in firsts if f is not None]
        if not known:
            continue
        last = cal.index_of(spec.kind, as_of)
        out.extend(Window(spec, i) for i in range(min(known), last + 1))
    return out
