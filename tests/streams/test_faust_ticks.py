"""A Faust worker's time ticks cost the groups whose value can have moved (issue 17, item 5).

The aggregates stage tells the planner which groups each applied batch touched, and the time
tick asks it for the groups due (:mod:`crm_pulse.streams.writeback.time_index`), for the groups
of the deltas partitions this worker holds; a generation change (a rebalance) or a partition
that becomes writable starts the index again. Driven here without Kafka: a
:class:`FaustPipeline` whose aggregates table is an in-memory fake, its consumer assigned the
deltas partitions the test says, the clock the test's.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_pulse.config.loader import load_config_text
from crm_pulse.metrics import Engine
from crm_pulse.metrics.events import Event
from crm_pulse.streams.faust import FaustPipeline
from crm_pulse.streams.faust.bulk import FaustChangelog
from crm_pulse.streams.faust.order import Anchor, Message
from crm_pulse.streams.faust.phases import FIRST_READ, RecordPhase, first_read_marker
from crm_pulse.streams.faust.stores import GroupedStore, by_record
from crm_pulse.streams.faust.timers import Timers
from crm_pulse.streams.writeback import Planner

from .test_faust_idempotence import Table
from .test_tick_index import (
    DEPLOY,
    HOUR,
    KINDS,
    T0,
    _deal,
    _delete,
    _records,
    kinds_event,
)

RUNTIME = """
runtime:
  kind: faust
  faust: {{app_id: ticks-test, broker: "kafka://127.0.0.1:1", partitions: {partitions}}}
"""


class _Consumer:
    """Faust's consumer as the timers read it: the partitions assigned to this worker."""

    def __init__(self, topic: str, partitions: set[int]) -> None:
        self.topic = topic
        self.partitions = partitions

    def assignment(self) -> set[Any]:
        from faust.types import TP

        return {TP(self.topic, p) for p in self.partitions}


class _Worker:
    """One worker's aggregates stage and time tick, with a record phase in front of it that
    turns events into delta messages placed in deltas partitions as the producer places them."""

    def __init__(self, text: str = DEPLOY, partitions: int = 1, mine: set[int] | None = None):
        deployment = load_config_text(
            text + RUNTIME.format(partitions=partitions), file="deploy.yaml", resolve_secrets=False
        )
        self.deployment = deployment
        p = self.pipeline = FaustPipeline(deployment, sinks={"crm": object()})
        store = p.aggregate_store  # the pipeline's own engine, on an in-memory table
        store.table = Table({}, [10**9])
        store.changelog = FaustChangelog(store.table)
        records = GroupedStore(Table({}, [10**9]), by_record)
        self.records = RecordPhase(Engine(p.catalog, records, deployment.window_specs()), records)
        self.partitions = partitions
        self.deltas: list[list[tuple[bytes, bytes]]] = [[] for _ in range(partitions)]
        self.applied = [0] * partitions
        self.offset = 0
        self.now = T0
        self.fields: dict[tuple[str, str, str], Any] = {}
        p.aggregates.clock = lambda: self.now / 1000
        worker = self

        class Values:
            async def send_all(self, messages: Any) -> None:
                for _key, value, _partition in messages:
                    row = json.loads(value)
                    key = (row["object"], row["record_id"], row["field"])
                    if row["value"] is None and worker.fields.get(key) is None:
                        continue  # as the outbox: no None to a field crm-pulse has not written
                    worker.fields[key] = row["value"]

        p.aggregates.values = Values()
        p.app.consumer = _Consumer(
            p.deltas.get_topic_name(), set(range(partitions)) if mine is None else mine
        )
        p.app.consumer_generation_id = 1
        self.timers = Timers(p)

    @property
    def planner(self) -> Planner:
        return self.pipeline.planner

    def send(self, events: list[Event]) -> None:
        """Phase 1: the events' delta messages, in the deltas partitions of their groups."""
        every = list(range(self.partitions))
        for event in events:
            self.offset += 1
            for key, body in self.records.apply(event.model_dump_json().encode(), 0, self.offset):
                self.deltas[DefaultPartitioner()(key, every, every)].append((key, body))

    def marker(self, source: str) -> None:
        for part in self.deltas:
            part.append((FIRST_READ, first_read_marker(source, 0)))

    def batch(self) -> None:
        """Phase 2: every deltas partition's new messages, one batch."""
        parts = []
        for q, part in enumerate(self.deltas):
            new = [
                Message("deltas", q, o, k, v)
                for o, (k, v) in enumerate(part)
                if o >= self.applied[q]
            ]
            self.applied[q] = len(part)
            if new:
                parts.append((Anchor("deltas", q), new))
        if parts:
            asyncio.run(self.pipeline.aggregates.apply(parts))

    def tick(self) -> None:
        asyncio.run(self.timers.tick())


@pytest.fixture(autouse=True)
def _settled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Timers, "settled", lambda self, generation: True)


def test_a_faust_tick_with_nothing_due_evaluates_no_group() -> None:
    w = _Worker()
    w.send([_deal(i, 1, f"u{i}", "won", T0 - 10 * HOUR + i * HOUR, 100 * i) for i in range(1, 4)])
    w.batch()
    w.tick()  # the first tick evaluates every group of every rule once (and builds the index)
    first = w.planner.evaluations
    assert first > 0
    for later in (T0 + 60_000, T0 + HOUR, T0 + 13 * HOUR):
        w.now = later
        w.tick()  # nothing leaves a window yet: no group evaluated
        assert w.planner.evaluations == first, later
    # u1's deal (closed at T0 - 9 h) leaves the 1-day windows at T0 + 15 h: u1's win rate and
    # the company's sum only
    w.now = T0 + 15 * HOUR + 1
    w.tick()
    assert w.planner.evaluations - first == 2
    assert w.fields[("User", "u1", "win_rate_1d")] is None
    assert w.fields[("Company", "c1", "won_1d")] == 500
    assert w.fields[("User", "u1", "won_2d")] == 1  # 2 days: still in
    # a batch touches u2's win rate: the next tick evaluates it, nothing else
    w.now = T0 + 15 * HOUR + 120_000
    w.send([_deal(9, 1, "u2", "lost", w.now, 5)])
    w.batch()
    assert w.fields[("User", "u2", "win_rate_1d")] == 0.5  # the batch's own value
    before = w.planner.evaluations
    w.now += 60_000
    w.tick()
    assert w.planner.evaluations == before + 1
    w.now = T0 + 16 * HOUR + 1  # u2's first deal leaves: u2's win rate and the company's sum
    w.tick()
    assert w.planner.evaluations == before + 3
    assert w.fields[("User", "u2", "win_rate_1d")] == 0


def test_a_new_generation_evaluates_the_groups_it_owns_once_then_what_is_due() -> None:
    """A rebalance (consumer generation) starts the index again, over this worker's groups:
    partition 1's groups are another worker's to write."""
    w = _Worker(partitions=2, mine={0})
    w.send([_deal(i, 1, f"u{i}", "won", T0 - 10 * HOUR + i * HOUR, 100 * i) for i in range(1, 9)])
    w.batch()
    w.tick()
    owns = w.pipeline.aggregates.owned_by({0})
    mine = {v.group for v in w.planner.values(w.pipeline.aggregates.engine, T0) if owns(v.group)}
    assert 0 < len(mine) < 9  # the owners spread over the two partitions
    first = w.planner.evaluations
    w.now += 60_000
    w.tick()
    assert w.planner.evaluations == first
    w.pipeline.app.consumer.partitions = {0, 1}  # the other worker left: a new generation
    w.pipeline.app.consumer_generation_id = 2
    w.tick()
    assert w.planner.evaluations - first > first  # every group once, this worker's all now
    again = w.planner.evaluations
    w.now += 60_000
    w.tick()
    assert w.planner.evaluations == again
    assert {k[1] for k in w.fields if k[0] == "User"} == {f"u{i}" for i in range(1, 9)}


def test_a_partition_that_becomes_writable_joins_the_index() -> None:
    """With a pulling source, a deltas partition writes once it holds every first-read marker;
    its groups are written whole then, and their values move at the ticks after as they would
    have had they been writable from the start."""
    text = DEPLOY.replace(
        "  - file: {name: crm, path: out.jsonl}",
        '  - file: {name: crm, path: out.jsonl, input: "in.jsonl"}',
    )
    w = _Worker(text)
    assert w.pipeline.pulled == ["crm"]
    w.send([_deal(i, 1, f"u{i}", "won", T0 - 10 * HOUR + i * HOUR, 100 * i) for i in range(1, 4)])
    w.batch()
    w.tick()  # no partition writable yet: nothing written, nothing evaluated
    assert w.fields == {} and w.planner.evaluations == 0
    w.now += 60_000
    w.marker("crm")
    w.batch()  # the partition's first writes: every rule's whole value
    assert w.fields[("Company", "c1", "won_1d")] == 600
    w.now = T0 + 15 * HOUR + 1  # u1's deal leaves the 1-day windows
    w.tick()
    assert w.fields[("User", "u1", "win_rate_1d")] is None
    assert w.fields[("Company", "c1", "won_1d")] == 500
    ticked = w.planner.evaluations
    w.now += 60_000
    w.tick()
    assert w.planner.evaluations == ticked


def test_values_of_a_tick_whose_publication_failed_are_published_by_the_next_one() -> None:
    """The index says a group was written once it was evaluated: a tick whose values did
    not reach Kafka must not leave them out for good."""
    w = _Worker()
    w.send([_deal(i, 1, f"u{i}", "won", T0 - 10 * HOUR + i * HOUR, 100 * i) for i in range(1, 4)])
    w.batch()
    w.tick()
    values = w.pipeline.aggregates.values
    real = values.send_all

    async def down(messages: Any) -> None:
        raise ConnectionError("Kafka is not answering")

    values.send_all = down
    w.now = T0 + 15 * HOUR + 1  # u1's deal leaves the 1-day windows
    with pytest.raises(ConnectionError):
        w.tick()
    assert w.fields[("Company", "c1", "won_1d")] == 600  # not published
    values.send_all = real
    w.now += 60_000
    w.tick()
    assert w.fields[("Company", "c1", "won_1d")] == 500
    assert w.fields[("User", "u1", "win_rate_1d")] is None


def test_a_faust_rollover_evaluates_the_groups_with_data_in_the_windows_it_crosses() -> None:
    """A calendar rule at its rollover: the groups with data in the month it leaves or enters,
    not every group with data (an owner whose wins are all in earlier months keeps its 0)."""
    jan = int(datetime(2026, 1, 10, 12, tzinfo=UTC).timestamp() * 1000)
    w = _Worker()
    w.now = int(datetime(2026, 3, 31, 20, tzinfo=UTC).timestamp() * 1000)
    old = [_deal(i, 1, f"old{i}", "won", jan + i * HOUR, 10) for i in range(20)]
    w.send([*old, _deal(100, 1, "march", "won", w.now - HOUR, 10)])
    w.batch()
    w.tick()
    assert w.fields[("User", "old3", "won_mtd")] == 0
    assert w.fields[("User", "march", "won_mtd")] == 1
    before = dict(w.planner.evaluated)
    w.now += 6 * HOUR  # into April (the tick also crosses the rolling rules' times)
    w.tick()
    month_rule = 4  # deals_won per month, its index in DEPLOY's writeback
    assert w.planner.evaluated[month_rule] - before[month_rule] == 1  # "march" only
    assert w.fields[("User", "march", "won_mtd")] == 0


# ---------------------------------------------------------------- indexed == every group


class _Pair:
    """The same batches and ticks through a worker whose planner indexes by time and through
    one that evaluates every group at every tick (the planner before the index)."""

    def __init__(self, text: str = DEPLOY) -> None:
        self.indexed = _Worker(text, partitions=2)
        self.full = _Worker(text, partitions=2)
        full = self.full.pipeline
        planner = Planner(self.full.deployment.writeback, full.catalog)
        full.planner = full.aggregates.planner = planner

    def send(self, events: list[Event]) -> None:
        self.indexed.send(events)
        self.full.send(events)

    def run(self, what: str, now: int) -> None:
        for w in (self.indexed, self.full):
            w.now = now
            if what == "batch":
                w.batch()
            else:
                w.tick()
        assert self.indexed.fields == self.full.fields, (what, now)

    def rebalance(self, partitions: set[int]) -> None:
        """Both workers now hold these deltas partitions, in a new consumer generation."""
        for w in (self.indexed, self.full):
            w.pipeline.app.consumer.partitions = set(partitions)
            w.pipeline.app.consumer_generation_id += 1

    def step(self, step: tuple[Any, ...], now: int) -> int:
        """A "batch" or "tick" step (minutes later) or a "rebalance"; returns the time after."""
        if step[0] == "rebalance":
            self.rebalance(step[1])
            return now
        now += step[1] * 60_000
        self.run(step[0], now)
        return now


_owner = st.sampled_from(["u1", "u2", "u3", "u4", "u5"])
_step = st.one_of(
    st.tuples(
        st.just("upsert"),
        st.integers(0, 11),  # record
        _owner,
        st.sampled_from(["won", "won", "lost"]),
        st.integers(-80, 50),  # closed, hours from now (future-dated too)
        st.integers(0, 500),
    ),
    st.tuples(st.just("delete"), st.integers(0, 11)),
    st.tuples(st.just("batch"), st.integers(0, 30)),  # minutes later
    st.tuples(st.just("tick"), st.integers(1, 40 * 60)),  # minutes later
    st.tuples(st.just("tick"), st.integers(1, 40 * 60)),
    st.tuples(st.just("rebalance"), st.sampled_from([{0}, {1}, {0, 1}])),
)
_steps = st.lists(_step, min_size=1, max_size=30).map(
    lambda steps: [s for i, s in enumerate(steps) if s[0] != "rebalance" or i % 3 == 0]
)  # a rebalance now and then: each one makes the next tick evaluate every group


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_steps)
def test_indexed_faust_ticks_write_what_evaluating_every_group_writes(
    steps: list[tuple[Any, ...]],
) -> None:
    """Random histories (upserts, deletes, future-dated deals), batches and ticks minutes to
    40 hours apart, rebalances that move the deltas partitions: the indexed worker publishes
    exactly what the worker evaluating every group at every tick publishes."""
    pair = _Pair()
    now = T0
    versions: dict[int, int] = {}
    for step in steps:
        if step[0] in ("batch", "tick", "rebalance"):
            now = pair.step(step, now)
            continue
        i = step[1]
        versions[i] = versions.get(i, 0) + 1
        if step[0] == "delete":
            pair.send([_delete(i, versions[i])])
        else:
            _, _, owner, status, hours, amount = step
            pair.send([_deal(i, versions[i], owner, status, now + hours * HOUR, amount)])
    pair.run("batch", now)
    for later in (now + HOUR, now + 50 * HOUR):
        pair.run("tick", later)
    pair.rebalance({0, 1})  # every partition: every field is this worker's
    pair.run("tick", now + 40 * 24 * HOUR)
    # and the fields hold each group's value
    w = pair.indexed
    for v in w.planner.values(w.pipeline.aggregates.engine, now + 40 * 24 * HOUR):
        key = (v.rule.target.object, v.record, v.rule.target.field)
        assert w.fields.get(key) == v.value, key


_kinds_step = st.one_of(
    st.tuples(st.just("upsert"), _records),
    st.tuples(
        st.just("delete"), st.sampled_from(["deal", "account", "spend", "quota"]), st.integers(0, 7)
    ),
    st.tuples(st.just("batch"), st.integers(0, 30)),  # minutes later
    st.tuples(st.just("tick"), st.integers(1, 40 * 60)),  # minutes later
    st.tuples(st.just("tick"), st.integers(1, 12 * 24 * 60)),  # up to 12 days later
    st.tuples(st.just("rebalance"), st.sampled_from([{0}, {1}, {0, 1}])),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(_kinds_step, min_size=1, max_size=30).map(
        lambda steps: [s for i, s in enumerate(steps) if s[0] != "rebalance" or i % 3 == 0]
    )
)
def test_indexed_faust_ticks_and_rollovers_write_what_evaluating_every_group_writes_every_kind(
    steps: list[tuple[Any, ...]],
) -> None:
    """The same over every kind of measure and window (``test_tick_index.KINDS``: window
    conditions, ``active``, ``among``, period records; rolling windows, days, weeks, months and
    quarters, current and previous), with accounts, spend and quotas, ticks up to 12 days
    apart and rebalances."""
    pair = _Pair(KINDS)
    now = T0
    versions: dict[tuple[str, int], int] = {}
    for step in steps:
        if step[0] in ("batch", "tick", "rebalance"):
            now = pair.step(step, now)
            continue
        pair.send([kinds_event(step, now, versions)])
    pair.run("batch", now)
    for later in (now + HOUR, now + 50 * HOUR, now + 40 * 24 * HOUR):
        pair.run("tick", later)
    pair.rebalance({0, 1})  # every partition: every field is this worker's
    pair.run("tick", now + 100 * 24 * HOUR)
    w = pair.indexed
    for v in w.planner.values(w.pipeline.aggregates.engine, now + 100 * 24 * HOUR):
        key2 = (v.rule.target.object, v.record, v.rule.target.field)
        assert w.fields.get(key2) == v.value, key2
