"""From measure values to metric rows: shared by the engine and the reference evaluator.

A :class:`MeasureSource` answers "what is measure m for group g in window w?" (the engine from
its incremental state, the reference by recomputing). This module evaluates each metric's
expression over those answers and decides which rows exist (metrics-spec section 5): for each
group with data, every calendar window from the earliest one that has data up to the one holding
the as-of time; one ``current`` row for snapshot metrics; one row per rolling window.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

from .calendar import CURRENT, Calendar, Window, WindowSpec
from .catalog import Catalog, CompiledMetric
from .definitions import CATEGORIES
from .measures import CompiledMeasure, Group

__all__ = [
    "MeasureSource",
    "MetricValue",
    "Selection",
    "evaluate",
    "group_dict",
    "group_text",
    "iter_report",
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


@dataclass(frozen=True)
class Selection:
    """Which rows a report keeps (``crm-pulse report --metric/--window/--group``); empty: all.

    ``metrics``: metric names (a goal's rows: the goal's name or a row name such as
    ``q2_revenue.progress``). ``windows``: kinds (``month``, ``rolling:30d``, ``current``) or
    labels (``2026-03``, ``2026-Q2``, ``last_30d``). ``groups``: ``(field, value)`` pairs a row's
    group must all hold; ``("company", "")`` keeps company-wide rows only. Rows are selected
    before they are evaluated, so a report costs what it keeps, not what the state holds.
    """

    metrics: frozenset[str] = field(default_factory=frozenset)
    windows: frozenset[str] = field(default_factory=frozenset)
    groups: tuple[tuple[str, str], ...] = ()

    def wants_metric(self, name: str) -> bool:
        return not self.metrics or name in self.metrics or name.split(".")[0] in self.metrics

    def wants_window(self, window: Window) -> bool:
        return not self.windows or (
            str(window.spec) in self.windows or window.label in self.windows
        )

    def wants_fields(self, fields: tuple[str, ...]) -> bool:
        """Whether groups over ``fields`` can match (before looking at their values)."""
        if not self.groups:
            return True
        if self.groups == (("company", ""),):
            return fields == ()
        return all(f in fields for f, _v in self.groups)

    def wants_group(self, group: Group) -> bool:
        if not self.groups:
            return True
        if self.groups == (("company", ""),):
            return group == ()
        have = {str(k): str(v) for k, v in zip(group[0::2], group[1::2], strict=True)}
        return all(have.get(f) == v for f, v in self.groups)


ALL = Selection()


def report(
    catalog: Catalog,
    source: MeasureSource,
    as_of: int,
    specs: Sequence[WindowSpec],
    *,
    keep_null: bool = False,
) -> list[MetricValue]:
    """Every row of every metric, sorted by metric, group, window."""
    return list(iter_report(catalog, source, as_of, specs, keep_null=keep_null))


def iter_report(
    catalog: Catalog,
    source: MeasureSource,
    as_of: int,
    specs: Sequence[WindowSpec],
    *,
    keep_null: bool = False,
    select: Selection = ALL,
    for_people: bool = False,
) -> Iterator[MetricValue]:
    """The rows ``select`` keeps, one at a time, in :func:`report`'s order.

    ``for_people``: in the order of the ``csv`` and ``table`` formats instead (metrics by
    category, then groups by their text, then windows by kind), still one metric's group list
    at a time, never the whole report."""
    cal = catalog.calendar
    metrics = list(catalog.metrics.values())
    if for_people:
        rank = {c: i for i, c in enumerate(CATEGORIES)}
        metrics.sort(key=lambda m: rank.get(m.category, len(rank)))  # stable: catalog order
    for metric in metrics:
        if not select.wants_metric(metric.name):
            continue
        batches: list[set[Group]] = []
        for fields in [f for f in metric.groups if select.wants_fields(f)]:
            groups: set[Group] = set()
            for m in metric.measures:
                groups.update(source.groups_with_data(m, fields))
            if metric.is_current and fields == ():
                groups.add(())
            if select.groups:
                groups = {g for g in groups if select.wants_group(g)}
            batches.append(groups)
        if for_people and batches:
            batches = [set().union(*batches)]
        for groups in batches:
            ordered = sorted(groups, key=group_text if for_people else _sort_key)
            for group in ordered:
                windows = _windows(cal, source, metric, group, as_of, specs)
                if for_people:
                    windows.sort(key=_window_key)
                for window in windows:
                    if not select.wants_window(window):
                        continue
                    value = evaluate(catalog, source, metric, group, window, as_of)
                    if value is not None or keep_null:
                        yield MetricValue(metric.name, window, group, value)
    from .goals import goal_rows

    goals = (
        r
        for r in goal_rows(catalog, source, as_of, select)
        if (r.value is not None or keep_null) and select.wants_window(r.window)
    )
    if for_people:  # few: sorted whole
        yield from sorted(
            goals, key=lambda r: (r.metric, group_text(r.group), _window_key(r.window))
        )
    else:
        yield from goals


def group_text(group: Group) -> str:
    """A group as people read it: ``owner_id=u3, region=EU``; ``company`` company-wide."""
    if not group:
        return "company"
    return ", ".join(f"{k}={v}" for k, v in zip(group[0::2], group[1::2], strict=True))


def _window_key(window: Window) -> tuple[str, int, int]:
    return (window.spec.kind, window.spec.days, window.index)


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
