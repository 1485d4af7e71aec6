"""Goals (SMART targets): ``progress = actual / target``, ``pace = actual / (target x elapsed share)``.

A goal names a metric, a calendar window by its label (``2026-03``, ``2026-Q2``, ``2026``), a
group, a target and optionally a deadline (default: the window's end). The elapsed share is the
part of [window start, deadline) that lies before the as-of time, clamped to [0, 1]; a pace with no
time elapsed is null. Goal rows are named ``<goal>.progress`` and ``<goal>.pace``.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

from .calendar import Calendar, Window
from .catalog import Catalog
from .definitions import GoalDef
from .events import parse_time
from .report import ALL, MeasureSource, MetricValue, Selection, evaluate

__all__ = ["GOAL_SUFFIXES", "goal_rows"]

GOAL_SUFFIXES = (".progress", ".pace")


def _elapsed(calendar: Calendar, goal: GoalDef, window: Window, as_of: int) -> Fraction:
    start, end = calendar.bounds(window)
    if goal.deadline is not None:
        end = parse_time(goal.deadline)
    if end <= start:
        return Fraction(1)
    share = Fraction(as_of - start, end - start)
    return min(Fraction(1), max(Fraction(0), share))


def goal_rows(
    catalog: Catalog, source: MeasureSource, as_of: int, select: Selection = ALL
) -> Iterator[MetricValue]:
    """Progress and pace of every goal in the catalog's definitions (those ``select`` keeps)."""
    for goal in catalog.definitions.goals:
        metric = catalog.metrics.get(goal.metric)
        if metric is None or not select.wants_metric(goal.name):
            continue
        window = catalog.calendar.parse_label(goal.window)
        group = tuple(x for k in sorted(goal.group) for x in (k, goal.group[k]))
        if not select.wants_window(window) or not select.wants_group(group):
            continue
        actual = evaluate(catalog, source, metric, group, window, as_of)
        target = Fraction(str(goal.target))
        progress = None if actual is None else actual / target
        share = _elapsed(catalog.calendar, goal, window, as_of)
        pace = None if actual is None or share == 0 else actual / (target * share)
        yield MetricValue(f"{goal.name}.progress", window, group, progress)
        yield MetricValue(f"{goal.name}.pace", window, group, pace)
