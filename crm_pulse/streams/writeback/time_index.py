"""Which groups time can have moved: the planner's index by time (``by_time``).

Time moves values without any event: a calendar window rolls over and a rolling window slides
continuously. Without an index a tick re-evaluates, at each tick, every group of a rolling rule,
and at a rollover every group with data of the rule. With one (the runtime reports the groups
its batches touched, :meth:`TimeIndexes.touched`) a tick costs the groups whose value can have
moved, for every kind of measure:

* a rolling rule's groups are indexed by the next time their value can change by time alone
  (a contribution leaving or entering the window, a window condition flipping, a period or an
  ``active`` interval's end passing; :mod:`crm_pulse.metrics.expiry`): a tick evaluates the
  groups whose time came and those a batch touched since the last tick (a batch plans only
  values that differ from the last one the engine *reported*, and a tick may have written
  another since);
* a calendar rollover evaluates the groups with data in the windows it leaves or enters
  (:mod:`crm_pulse.metrics.window_groups`) and those a batch touched since the rule's last
  rollover; every other group's value is that of a window without data in both, which its
  field holds already. The first rollover of a rule after a start (or a rolled back batch)
  evaluates every group with data: the groups touched before it are not known.

The index lives in memory: the first tick after a start (or a reset) evaluates each rolling
rule's groups once to build it.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ...metrics.engine import Engine
from ...metrics.expiry import next_change, watched_measures
from ...metrics.measures import Group
from .rules import Rule

__all__ = ["TimeIndex", "TimeIndexes"]


@dataclass
class TimeIndex:
    """A rolling rule's groups by the next time their value can change by time alone."""

    days: int
    built: bool = False
    """Every group is indexed (after a tick that evaluated them all)."""
    next_at: dict[Group, int] = field(default_factory=dict)
    heap: list[tuple[int, int, Group]] = field(default_factory=list)  # (time, seq, group)
    touched: set[Group] = field(default_factory=set)
    """Groups a batch touched since the last tick."""
    seq: int = 0

    def reset(self) -> None:
        self.built = False
        self.next_at.clear()
        self.heap.clear()
        self.touched.clear()

    def put(self, group: Group, at: int | None) -> None:
        if at is None:
            self.next_at.pop(group, None)
            return
        if self.next_at.get(group) == at:
            return
        self.next_at[group] = at
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, group))
        if len(self.heap) > 2 * len(self.next_at) + 1024:  # drop superseded entries
            self.heap = [(t, i, g) for t, i, g in self.heap if self.next_at.get(g) == t]
            heapq.heapify(self.heap)

    def due(self, as_of: int) -> list[Group]:
        """Groups whose time came (removed from the index: evaluating them puts them back)."""
        out = []
        heap = self.heap
        while heap and heap[0][0] <= as_of:
            at, _seq, group = heapq.heappop(heap)
            if self.next_at.get(group) == at:
                del self.next_at[group]
                out.append(group)
        return out

    def due_groups(self, as_of: int) -> list[Group]:
        """The groups whose value can have moved since the last tick: those whose time came,
        and those a batch touched."""
        groups = set(self.due(as_of)) | self.touched
        self.touched.clear()  # the same set: TimeIndexes.touched() adds to it
        return sorted(groups, key=lambda g: str(g[1:2]))


class TimeIndexes:
    """One planner's time index: per rolling rule a :class:`TimeIndex`, per calendar rule the
    groups touched since its last rollover. Empty (nothing indexed) without ``by_time``."""

    def __init__(self, rules: Sequence[Rule], by_time: bool) -> None:
        self.rolling: dict[int, TimeIndex] = {}
        """Rule index -> its groups by time (rolling rules)."""
        self.since_rollover: dict[int, set[Group]] = {}
        """Per calendar rule: the groups a batch touched since its last rollover."""
        self.tracked: set[int] = set()
        """Calendar rules whose touched groups are known since their last rollover (one seen
        by this planner: not after a start or a rolled back batch)."""
        self.measures: set[int] = set()
        """Measures of the time-indexed rules (what :meth:`touched` needs to hear about)."""
        self._by_measure: dict[int, list[tuple[tuple[str, ...], set[Group]]]] = {}
        """Measure -> (group fields, touched groups) of the rules whose value it can move."""
        if not by_time:
            return
        for r in rules:
            spec = r.rule.window_spec
            if spec.kind == "rolling":
                index = self.rolling[r.index] = TimeIndex(spec.days)
                touched = index.touched
            elif spec.is_calendar:
                touched = self.since_rollover[r.index] = set()
            else:
                continue
            watched = {i for m in r.metric.measures for i in watched_measures(m)}
            for i in sorted(watched):
                self._by_measure.setdefault(i, []).append((r.fields, touched))
            self.measures |= watched

    def touched(self, groups: Iterable[tuple[int, Group]]) -> None:
        """A batch touched these (measure, group) buckets: remember the groups of the rules
        they can move."""
        if not self._by_measure:
            return
        for mi, group in groups:
            rules = self._by_measure.get(mi)
            if rules is None:
                continue
            fields = tuple(group[0::2])
            for rule_fields, touched in rules:
                if fields == rule_fields:
                    touched.add(group)

    def reset(self) -> None:
        """Forget the rolling rules' indexes (the next tick evaluates their groups to build them
        again) and which calendar rules' touched groups are known."""
        self.tracked.clear()
        for index in self.rolling.values():
            index.reset()

    @staticmethod
    def next_change(
        r: Rule, index: TimeIndex, engine: Engine, group: Group, as_of: int
    ) -> int | None:
        """The earliest time after ``as_of`` at which ``group``'s value of ``r`` can change by
        time alone (None: not until a batch touches it)."""
        store, calendar, days = engine.store, engine.calendar, index.days
        times = [next_change(store, calendar, m, group, days, as_of) for m in r.metric.measures]
        known = [t for t in times if t is not None]
        return min(known) if known else None
