"""Outputs: the report rows at an as-of time, and the metric values that moved (what a runtime
writes back)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from fractions import Fraction
from typing import Any

from ..calendar import (
    CURRENT,
    FINE_KINDS,
    Window,
    WindowSpec,
)
from ..catalog import CompiledMetric
from ..measures import Group
from ..report import ALL, MetricValue, Selection, evaluate, iter_report
from .core import _BY_MONTH, _sort_group
from .indexes import _StateIndex
from .reads import Reads


class Outputs(Reads):
    """Metric rows: a whole report, or the values that moved since the last call."""

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
