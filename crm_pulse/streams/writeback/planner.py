"""The planner: changed metric values -> field writes, by the deployment's write-back rules.

A rule names a metric, a window (``month``, ``quarter``, ``year``, ``rolling:Nd`` or
``current``), which one (the window holding *now*, or the previous complete one) and a group
(``{}`` for one company-wide value, or one group field such as ``owner_id``). A changed value
matches a rule when its metric, its group fields and its window are the rule's at the as-of
time; the target record is the rule's fixed ``record`` (company-wide) or the group's value (the
account, the rep).

Every value a rule covers reaches the CRM: a group's row in the rule's target window exists as
soon as the group has data in that window *or an earlier one* (a report lists every window from
the first with data up to now), so a change in an earlier window of a group the rule has not
planned yet also plans the group's target value (0 for an account whose wins are all in earlier
quarters). Without it such fields were written only by a restart's or a rollover's full
re-evaluation, so what the CRM held depended on whether one had happened.

Time moves values without any event: when a calendar window rolls over the rule's target window
changes, and a rolling window slides continuously. :meth:`Planner.due_by_time` re-evaluates the
rules concerned at each tick, and the outbox drops what equals the last write: at a rollover
every group of the rule with data, at each tick every group of a rolling rule. With ``by_time``
(the embedded runtime, which reports the groups its batches touched with
:meth:`Planner.touched`) a tick costs the groups whose value can have moved, for every kind of
measure: a rolling rule's groups are indexed by the next time their value can change by time
alone (a contribution leaving or entering the window, a window condition flipping, a period
or an ``active`` interval's end passing; :mod:`crm_pulse.metrics.expiry`), and a calendar
rollover evaluates the groups with data in the windows it leaves or enters
(:mod:`crm_pulse.metrics.window_groups`) and those a batch touched since the rule's last
rollover; every other group's value is that of a window without data in both, which its field
holds already. The first rollover of a rule after a start (or a rolled back batch) evaluates
every group with data: the groups touched before it are not known.

Never wipe, never flicker (the first-read rule, shared by both runtimes): a CRM field holds a
value before crm-pulse starts, so nothing is written until every *pulling* source of the
deployment has finished its first complete read (a backfill, or a first poll from no cursor)
and the engine has applied everything that read stored. Until then :meth:`Planner.plan` and
:meth:`Planner.due_by_time` return nothing; the runtime reports each source's first read with
:meth:`Planner.first_read_done`, and the first due_by_time after the last one writes every
rule's complete value. Receive-only connectors (the ``events`` ingress, webhook-only plugins)
have no history to read: they do not hold writes back. A value that becomes undefined is
written as ``None`` only with ``on_null: clear``, and the outbox never sends ``None`` to a field
crm-pulse has not written (so a field is never emptied of a value that was not ours).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ...config.models import WritebackRule
from ...connectors.protocols import FieldWrite
from ...errors import ConfigError, ConfigProblem
from ...metrics.calendar import CURRENT, Calendar, Window, WindowSpec
from ...metrics.catalog import Catalog, CompiledMetric
from ...metrics.engine import Engine
from ...metrics.expiry import next_change, watched_measures
from ...metrics.measures import Group
from ...metrics.report import MeasureSource, MetricValue, evaluate

__all__ = ["Planner", "RuleValue", "field_value"]


def field_value(value: Fraction | None) -> float | int | None:
    """The number written to a CRM field: an int when whole, else a float rounded to 6 places."""
    if value is None:
        return None
    if value.denominator == 1:
        return int(value.numerator)
    return round(float(value), 6)


@dataclass(frozen=True)
class RuleValue:
    """One rule's value for one group, and the record and window it is written for."""

    index: int
    rule: WritebackRule
    group: Group
    record: str
    window: Window
    value: float | int | None


@dataclass(frozen=True)
class _Rule:
    index: int
    rule: WritebackRule
    metric: CompiledMetric
    fields: tuple[str, ...]


@dataclass
class _TimeIndex:
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
        """``by_time``: index rolling rules' groups by time (see the module docstring); the
        caller then reports every batch's touched groups with :meth:`touched`."""
        self.catalog = catalog
        self.sources: frozenset[str] = frozenset(sources)
        """The pulling sources: no write before each finished its first complete read."""
        self.waiting_for: set[str] = set(self.sources)
        """Pulling sources whose first complete read has not been applied yet."""
        self.calendar: Calendar = catalog.calendar
        problems: list[ConfigProblem] = []
        self.rules: list[_Rule] = []
        for i, rule in enumerate(rules):
            metric = catalog.metrics.get(rule.metric)
            if metric is None:
                problems.append(
                    ConfigProblem(f"writeback[{i}].metric", f"no metric named {rule.metric!r}")
                )
                continue
            if rule.target.match is not None:
                problems.append(
                    ConfigProblem(
                        f"writeback[{i}].target.match",
                        "writing one value to every matching record is not supported by this "
                        "version; write to the group's own record (leave match out) or map "
                        "each group to a record with target.records",
                    )
                )
                continue
            self.rules.append(_Rule(i, rule, metric, tuple(rule.group)))
        if problems:
            raise ConfigError(problems)
        self._by_metric: dict[str, list[_Rule]] = {}
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
        # rolling rules: their groups by the next time their value can change by time alone
        self._by_time: dict[int, _TimeIndex] = {}
        self._time_rules: dict[int, list[tuple[tuple[str, ...], set[Group]]]] = {}
        """Measure -> (group fields, touched groups) of the rules whose value it can move."""
        self._since_rollover: dict[int, set[Group]] = {}
        """Per calendar rule: the groups a batch touched since its last rollover."""
        self._tracked: set[int] = set()
        """Calendar rules whose touched groups are known since their last rollover (one seen
        by this planner: not after a start or a rolled back batch)."""
        self.time_measures: set[int] = set()
        """Measures of the time-indexed rules (what :meth:`touched` needs to hear about)."""
        if by_time:
            for r in self.rules:
                spec = r.rule.window_spec
                if spec.kind == "rolling":
                    index = self._by_time[r.index] = _TimeIndex(spec.days)
                    touched = index.touched
                elif spec.is_calendar:
                    touched = self._since_rollover[r.index] = set()
                else:
                    continue
                watched = {i for m in r.metric.measures for i in watched_measures(m)}
                for i in sorted(watched):
                    self._time_rules.setdefault(i, []).append((r.fields, touched))
                self.time_measures |= watched
        self.evaluations = 0
        """Values evaluated by :meth:`due_by_time` so far (a tick's cost, for tests)."""
        self.evaluated: dict[int, int] = {}
        """The same per rule (its index in the deployment's ``writeback``)."""

    # ------------------------------------------------------------ the first-read rule
    @property
    def ready(self) -> bool:
        """True once every source finished its first complete read (writes may flow)."""
        return not self.waiting_for

    def first_read_done(self, source: str) -> bool:
        """``source`` finished its first complete read and the engine applied it; True when
        that was the last one awaited (the next :meth:`due_by_time` then writes every rule)."""
        if source not in self.waiting_for:
            return False
        self.waiting_for.discard(source)
        if self.waiting_for:
            return False
        self.forget_windows()
        return True

    def restore_first_reads(self, written: Iterable[str]) -> None:
        """Take back which sources' first reads a runtime already wrote the whole values after
        (kept with those writes, so after a restart or a rolled-back batch the planner waits
        exactly for the others; a source added to the deployment since is awaited again). Unlike
        :meth:`first_read_done`, the windows are kept: what was written needs no rewrite."""
        self.waiting_for = set(self.sources) - set(written)

    # ------------------------------------------------------------ windows
    def target_window(self, rule: WritebackRule, as_of: int) -> Window:
        spec = rule.window_spec
        if spec == CURRENT:
            return Window(CURRENT)
        if spec.kind == "rolling":
            return Window(spec)
        index = self.calendar.index_of(spec.kind, as_of)
        return Window(spec, index - 1 if rule.which == "previous" else index)

    @staticmethod
    def _record(r: _Rule, group: Group) -> str | None:
        """The record a group's value goes to (None: this group is not written)."""
        target = r.rule.target
        if not r.fields:
            return target.record
        key = group[1]
        if key in (None, ""):
            return None  # no record to write to (a deal without an owner, say)
        if target.records is not None:
            return target.records.get(str(key))
        return str(key)

    def _write(self, r: _Rule, group: Group, value: Fraction | None) -> FieldWrite | None:
        record = self._record(r, group)
        if record is None:
            return None
        if value is None and r.rule.on_null == "keep":
            return None
        t = r.rule.target
        return FieldWrite(t.connector, t.object, record, t.field, field_value(value))

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
        derived: dict[tuple[int, Group], tuple[_Rule, Window]] = {}
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
                write = self._write(r, v.group, v.value)
                if write is not None:
                    out.append(write)
        if source is not None:
            for (index, group), (r, target) in derived.items():
                covered = self._covered_groups(index, target)
                if group in covered:
                    continue
                covered.add(group)
                value = evaluate(self.catalog, source, r.metric, group, target, as_of)
                write = self._write(r, group, value)
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
        self._tracked.clear()
        for index in self._by_time.values():
            index.reset()

    def touched(self, groups: Iterable[tuple[int, Group]]) -> None:
        """A batch touched these (measure, group) buckets (from
        :meth:`Engine.touched`, before its ``changes``): the next tick evaluates these groups
        again and looks their next time of change up. (The batch's ``changes`` compare with the
        value last *reported*, not with what a tick wrote since: a value that went back to the
        reported one is not planned by the batch.)"""
        if not self._time_rules:
            return
        for mi, group in groups:
            rules = self._time_rules.get(mi)
            if rules is None:
                continue
            fields = tuple(group[0::2])
            for rule_fields, touched in rules:
                if fields == rule_fields:
                    touched.add(group)

    # ------------------------------------------------------------ when time moves
    def forget_windows(self) -> None:
        """Make the next :meth:`due_by_time` treat every rule as rolled over (after a worker
        took over groups it did not tick for)."""
        self._last_targets.clear()
        self._tracked.clear()
        for index in self._by_time.values():
            index.reset()

    def tick_state(self) -> dict[str, list[Any]]:
        """What :meth:`due_by_time` remembers (each rule's target window at its last tick), as
        JSON-able data, for a runtime that keeps it across restarts (:meth:`restore_tick_state`):
        then the first tick after a start re-evaluates only the rules whose window rolled over
        while the process was down, not every group of every rule."""
        return {
            _rule_id(r): [w.spec.kind, w.spec.days, w.index]
            for r in self.rules
            if (w := self._last_targets.get(r.index)) is not None
        }

    def restore_tick_state(self, state: dict[str, list[Any]]) -> None:
        """Take back what :meth:`tick_state` returned; rules that are not in it (new or edited
        since) are evaluated in full at the next tick."""
        self._last_targets.clear()
        self._tracked.clear()
        for index in self._by_time.values():
            index.reset()
        for r in self.rules:
            found = state.get(_rule_id(r))
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
        for r in self.rules:
            window = self.target_window(r.rule, as_of)
            last = self._last_targets.get(r.index)
            rolled = last != window
            self._last_targets[r.index] = window
            if not rolled and window.spec.kind != "rolling":
                continue
            covered = self._covered_groups(r.index, window)
            index = self._by_time.get(r.index)
            since = self._since_rollover.get(r.index)
            if index is not None and index.built and not rolled:
                groups = self._due_groups(index, as_of)
            elif (
                r.index in self._tracked
                and last is not None
                and (found := self._rolled_groups(engine, r, last, window, as_of)) is not None
            ):
                groups = found
            else:
                groups = self._groups(engine, r)
                if index is not None:
                    index.reset()
                    index.built = True
            if since is not None:
                since.clear()
                self._tracked.add(r.index)
            groups += [g for g in extra if tuple(g[0::2]) == r.fields]
            for group in dict.fromkeys(groups):
                if owns is not None and not owns(group):
                    continue
                covered.add(group)
                self.evaluations += 1
                self.evaluated[r.index] = self.evaluated.get(r.index, 0) + 1
                value = evaluate(self.catalog, engine, r.metric, group, window, as_of)
                if index is not None:
                    index.put(group, self._next_change(r, index, engine, group, as_of))
                write = self._write(r, group, value)
                if write is not None:
                    out.append(write)
        return out

    def _rolled_groups(
        self, engine: Engine, r: _Rule, old: Window, new: Window, as_of: int
    ) -> list[Group] | None:
        """The groups whose value can differ between a calendar rule's former target window
        and its new one: those with data in either (or between); the others' fields hold the
        value of a window without data in both. None: the engine cannot tell."""
        if not r.fields:
            return [()]
        groups: set[Group] = set()
        touched = self._since_rollover.get(r.index, ())
        for m in r.metric.measures:
            found = engine.rollover_groups(m, r.fields, old, new, as_of, touched)
            if found is None:
                return None
            groups |= found
        return sorted((g for g in groups if g[1] not in (None, "")), key=lambda g: str(g[1]))

    @staticmethod
    def _due_groups(index: _TimeIndex, as_of: int) -> list[Group]:
        """The groups of a time-indexed rule whose value can have moved since its last tick:
        those whose time came, and those a batch touched."""
        groups = set(index.due(as_of)) | index.touched
        index.touched.clear()  # the same set: the planner's touched() adds to it
        return sorted(groups, key=lambda g: str(g[1:2]))

    @staticmethod
    def _next_change(
        r: _Rule, index: _TimeIndex, engine: Engine, group: Group, as_of: int
    ) -> int | None:
        store, calendar, days = engine.store, engine.calendar, index.days
        times = [next_change(store, calendar, m, group, days, as_of) for m in r.metric.measures]
        known = [t for t in times if t is not None]
        return min(known) if known else None

    def values(self, engine: Engine, as_of: int) -> list[RuleValue]:
        """Every rule's current value for each of its groups: what the fields hold once written
        (for the status page and ``/metrics``; bounded by the rules and their records)."""
        out: list[RuleValue] = []
        for r in self.rules:
            window = self.target_window(r.rule, as_of)
            for group in self._groups(engine, r):
                record = self._record(r, group)
                if record is None:
                    continue
                value = evaluate(self.catalog, engine, r.metric, group, window, as_of)
                out.append(RuleValue(r.index, r.rule, group, record, window, field_value(value)))
        return out

    def _groups(self, engine: Engine, r: _Rule) -> list[Group]:
        if not r.fields:
            return [()]
        groups: set[Group] = set()
        for m in r.metric.measures:
            groups.update(engine.groups_with_data(m, r.fields))
        return sorted((g for g in groups if g[1] not in (None, "")), key=lambda g: str(g[1]))


def _rule_id(r: _Rule) -> str:
    """A rule's identity across restarts: its whole definition (an edited rule is a new one)."""
    return r.rule.model_dump_json()
