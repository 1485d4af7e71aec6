"""The planner: changed metric values -> field writes, by the deployment's write-back rules.

A changed value matches a rule (:mod:`.rules`) when its metric, its group fields and its window
are the rule's at the as-of time.

Every value a rule covers reaches the CRM: a group's row in the rule's target window exists as
soon as the group has data in that window *or an earlier one* (a report lists every window from
the first with data up to now), so a change in an earlier window of a group the rule has not
planned yet also plans the group's target value (0 for an account whose wins are all in earlier
quarters). Without it such fields were written only by a restart's or a rollover's full
re-evaluation, so what the CRM held depended on whether one had happened.

Time moves values without any event: :meth:`Planner.due_by_time` re-evaluates the rules
concerned at each tick, and the outbox drops what equals the last write: at a rollover every
group of the rule with data, at each tick every group of a rolling rule. With ``by_time`` (the
runtime reports the groups its batches touched with :meth:`Planner.touched`) a tick costs the
groups whose value can have moved (:mod:`.time_index`).

No write before the first complete reads (:mod:`.first_read`): until then :meth:`Planner.plan`
and :meth:`Planner.due_by_time` return nothing. A value that becomes undefined is written as
``None`` only with ``on_null: clear``, and the outbox never sends ``None`` to a field crm-pulse
has not written (so a field is never emptied of a value that was not ours).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ...config.models import WritebackRule
from ...connectors.protocols import FieldWrite
from ...metrics.calendar import CURRENT, Calendar, Window, WindowSpec
from ...metrics.catalog import Catalog
from ...metrics.engine import Engine
from ...metrics.measures import Group
from ...metrics.report import MeasureSource, MetricValue, evaluate
from .first_read import FirstReads
from .rules import (
    Rule,
    RuleValue,
    compile_rules,
    field_value,
    groups_of,
    record_of,
    rule_id,
    write_of,
)
from .time_index import TimeIndexes

__all__ = ["Planner", "RuleValue", "field_value"]


class Planner:
    """Maps metric values to :class:`FieldWrite` s for one deployment's rules."""

    def __init__(
        self,
        rules: Sequence[WritebackRule],
        catalog: Catalog,
        *,
        sources: Iterable[str] = (),
        by_time: bool = False,
    ) -> None:
        """``sources``: the pulling sources (:mod:`.first_read`). ``by_time``: index the rules'
        groups by time (:mod:`.time_index`); the caller then reports every batch's touched
        groups with :meth:`touched`."""
        self.catalog = catalog
        self.first_reads = FirstReads(sources)
        self.calendar: Calendar = catalog.calendar
        self.rules: list[Rule] = compile_rules(rules, catalog)
        self._by_metric: dict[str, list[Rule]] = {}
        for r in self.rules:
            self._by_metric.setdefault(r.rule.metric, []).append(r)
        self._last_targets: dict[int, Window] = {}
        self.wanted: dict[str, set[tuple[str, ...]]] = {}
        """Metric -> the group fields its rules write: all the engine's ``changes`` must
        evaluate for this planner (see :meth:`~crm_pulse.metrics.Engine.changes`)."""
        for r in self.rules:
            self.wanted.setdefault(r.rule.metric, set()).add(r.fields)
        # per rule: the target window and the groups whose value in it was planned (a change in
        # an earlier window cannot move it, so it is not evaluated again for such a change)
        self._covered: dict[int, tuple[Window, set[Group]]] = {}
        self.time_index = TimeIndexes(self.rules, by_time)
        self.evaluations = 0
        """Values evaluated by :meth:`due_by_time` so far (a tick's cost, for tests)."""
        self.evaluated: dict[int, int] = {}
        """The same per rule (its index in the deployment's ``writeback``)."""

    # ------------------------------------------------------------ the first-read rule
    @property
    def sources(self) -> frozenset[str]:
        """The pulling sources: no write before each finished its first complete read."""
        return self.first_reads.sources

    @property
    def waiting_for(self) -> set[str]:
        """Pulling sources whose first complete read has not been applied yet."""
        return self.first_reads.waiting_for

    @property
    def ready(self) -> bool:
        """True once every source finished its first complete read (writes may flow)."""
        return self.first_reads.ready

    def first_read_done(self, source: str) -> bool:
        """``source`` finished its first complete read and the engine applied it; True when
        that was the last one awaited (the next :meth:`due_by_time` then writes every rule)."""
        if not self.first_reads.done(source):
            return False
        self.forget_windows()
        return True

    def restore_first_reads(self, written: Iterable[str]) -> None:
        """Take back which sources' first reads a runtime already wrote the whole values after
        (kept with those writes, so after a restart or a rolled-back batch the planner waits
        exactly for the others; a source added to the deployment since is awaited again). Unlike
        :meth:`first_read_done`, the windows are kept: what was written needs no rewrite."""
        self.first_reads.restore(written)

    # ------------------------------------------------------------ windows
    def target_window(self, rule: WritebackRule, as_of: int) -> Window:
        spec = rule.window_spec
        if spec == CURRENT:
            return Window(CURRENT)
        if spec.kind == "rolling":
            return Window(spec)
        index = self.calendar.index_of(spec.kind, as_of)
        return Window(spec, index - 1 if rule.which == "previous" else index)

    # ------------------------------------------------------------ after each batch
    def plan(
        self, values: Iterable[MetricValue], as_of: int, source: MeasureSource | None = None
    ) -> list[FieldWrite]:
        """The writes that the changed ``values`` call for (none before the first reads).

        With ``source`` (the engine the values came from), a value that moved in a window before
        a rule's target window also plans the group's value in the target window, once per
        group and target window (see the module docstring); that write obeys the first-read rule
        like every other.
        """
        out: list[FieldWrite] = []
        if self.waiting_for:
            return out
        derived: dict[tuple[int, Group], tuple[Rule, Window]] = {}
        for v in values:
            for r in self._by_metric.get(v.metric, ()):
                if tuple(v.group[0::2]) != r.fields:
                    continue
                target = self.target_window(r.rule, as_of)
                if v.window != target:
                    if (
                        source is not None
                        and v.window.spec == target.spec
                        and v.window.index < target.index
                    ):
                        derived.setdefault((r.index, v.group), (r, target))
                    continue
                self._covered_groups(r.index, target).add(v.group)
                write = write_of(r, v.group, v.value)
                if write is not None:
                    out.append(write)
        if source is not None:
            for (index, group), (r, target) in derived.items():
                covered = self._covered_groups(index, target)
                if group in covered:
                    continue
                covered.add(group)
                value = evaluate(self.catalog, source, r.metric, group, target, as_of)
                write = write_of(r, group, value)
                if write is not None:
                    out.append(write)
        return out

    def _covered_groups(self, index: int, target: Window) -> set[Group]:
        found = self._covered.get(index)
        if found is None or found[0] != target:
            found = self._covered[index] = (target, set())
        return found[1]

    def forget_covered(self) -> None:
        """Forget which groups' target values were planned (the caller rolled back writes
        planned since, so they must be planned again), and the time index (built again by
        evaluating every group of the rolling rules at the next tick)."""
        self._covered.clear()
        self.time_index.reset()

    @property
    def time_measures(self) -> set[int]:
        """Measures of the time-indexed rules (what :meth:`touched` needs to hear about)."""
        return self.time_index.measures

    def touched(self, groups: Iterable[tuple[int, Group]]) -> None:
        """A batch touched these (measure, group) buckets (from
        :meth:`Engine.touched`, before its ``changes``): the next tick evaluates these groups
        again and looks their next time of change up. (The batch's ``changes`` compare with the
        value last *reported*, not with what a tick wrote since: a value that went back to the
        reported one is not planned by the batch.)"""
        self.time_index.touched(groups)

    # ------------------------------------------------------------ when time moves
    def forget_time_index(self) -> None:
        """The groups this planner ticks for changed (a Faust deltas partition became writable):
        the next :meth:`due_by_time` evaluates every group of the time-indexed rules once to
        index them again; the windows are kept."""
        self.time_index.reset()

    def forget_windows(self) -> None:
        """Make the next :meth:`due_by_time` treat every rule as rolled over (after a worker
        took over groups it did not tick for)."""
        self._last_targets.clear()
        self.time_index.reset()

    def tick_state(self) -> dict[str, list[Any]]:
        """What :meth:`due_by_time` remembers (each rule's target window at its last tick), as
        JSON-able data, for a runtime that keeps it across restarts (:meth:`restore_tick_state`):
        then the first tick after a start re-evaluates only the rules whose window rolled over
        while the process was down, not every group of every rule."""
        return {
            rule_id(r): [w.spec.kind, w.spec.days, w.index]
            for r in self.rules
            if (w := self._last_targets.get(r.index)) is not None
        }

    def restore_tick_state(self, state: dict[str, list[Any]]) -> None:
        """Take back what :meth:`tick_state` returned; rules that are not in it (new or edited
        since) are evaluated in full at the next tick."""
        self._last_targets.clear()
        self.time_index.reset()
        for r in self.rules:
            found = state.get(rule_id(r))
            if found is not None:
                kind, days, index = found
                self._last_targets[r.index] = Window(WindowSpec(str(kind), int(days)), int(index))

    def due_by_time(
        self,
        engine: Engine,
        as_of: int,
        owns: Callable[[Group], bool] | None = None,
        also: Iterable[Group] = (),
    ) -> list[FieldWrite]:
        """Writes for the rules whose target window rolled over or slides (rolling).

        ``owns``: on an engine that holds only some groups (a Faust worker), the groups it
        answers for; the others' values are another worker's to write. ``also``: more groups
        to evaluate though they have no data (they had some under definitions a rebuilt state
        replaced, so their fields may hold a value to correct).
        """
        extra = sorted(set(also), key=str)
        out: list[FieldWrite] = []
        if self.waiting_for:
            return out
        times = self.time_index
        for r in self.rules:
            window = self.target_window(r.rule, as_of)
            last = self._last_targets.get(r.index)
            rolled = last != window
            self._last_targets[r.index] = window
            if not rolled and window.spec.kind != "rolling":
                continue
            covered = self._covered_groups(r.index, window)
            index = times.rolling.get(r.index)
            since = times.since_rollover.get(r.index)
            if index is not None and index.built and not rolled:
                groups = index.due_groups(as_of)
            elif (
                r.index in times.tracked
                and last is not None
                and (found := self._rolled_groups(engine, r, last, window, as_of)) is not None
            ):
                groups = found
            else:
                groups = groups_of(engine, r)
                if index is not None:
                    index.reset()
                    index.built = True
            if since is not None:
                since.clear()
                times.tracked.add(r.index)
            groups += [g for g in extra if tuple(g[0::2]) == r.fields]
            for group in dict.fromkeys(groups):
                if owns is not None and not owns(group):
                    continue
                covered.add(group)
                self.evaluations += 1
                self.evaluated[r.index] = self.evaluated.get(r.index, 0) + 1
                value = evaluate(self.catalog, engine, r.metric, group, window, as_of)
                if index is not None:
                    index.put(group, times.next_change(r, index, engine, group, as_of))
                write = write_of(r, group, value)
                if write is not None:
                    out.append(write)
        return out

    def _rolled_groups(
        self, engine: Engine, r: Rule, old: Window, new: Window, as_of: int
    ) -> list[Group] | None:
        """The groups whose value can differ between a calendar rule's former target window
        and its new one: those with data in either (or between); the others' fields hold the
        value of a window without data in both. None: the engine cannot tell."""
        if not r.fields:
            return [()]
        groups: set[Group] = set()
        touched = self.time_index.since_rollover.get(r.index, ())
        for m in r.metric.measures:
            found = engine.rollover_groups(m, r.fields, old, new, as_of, touched)
            if found is None:
                return None
            groups |= found
        return sorted((g for g in groups if g[1] not in (None, "")), key=lambda g: str(g[1]))

    def values(self, engine: Engine, as_of: int) -> list[RuleValue]:
        """Every rule's current value for each of its groups: what the fields hold once written
        (for the status page and ``/metrics``; bounded by the rules and their records)."""
        out: list[RuleValue] = []
        for r in self.rules:
            window = self.target_window(r.rule, as_of)
            for group in groups_of(engine, r):
                record = record_of(r, group)
                if record is None:
                    continue
                value = evaluate(self.catalog, engine, r.metric, group, window, as_of)
                out.append(RuleValue(r.index, r.rule, group, record, window, field_value(value)))
        return out
