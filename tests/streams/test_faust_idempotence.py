"""The Faust runtime's exactly-once effect, proven without a broker.

The agents' own logic (phases, grouped table entries, input positions) runs over a simulated
Kafka: append-only partitions, a changelog that keeps what was acknowledged, and workers that
die at random points (after sending part of their output, half-way through writing their
changelog) and come back from the changelog, while the "consumer" delivers messages again,
skips some (as faust-streaming was seen doing around rebalances) and commits past them. The
values the aggregates stage publishes must end equal to one engine fed every event once.
"""

from __future__ import annotations

import asyncio
import json
import random
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_pulse.config.loader import load_config_text
from crm_pulse.config.models import Deployment
from crm_pulse.metrics import Delta, Engine
from crm_pulse.streams.faust import FaustPipeline
from crm_pulse.streams.faust.order import Anchor, InputOrder, Message
from crm_pulse.streams.faust.phases import AggregatePhase, BadMessage, RecordPhase, pack
from crm_pulse.streams.faust.stores import GroupedStore, by_group, by_record

from ..test_phases import _catalog, _keyed
from ..test_property import DAY, T0, WINDOWS, history, shuffled
from .fakes import ScriptedSink


class Crash(Exception):
    """The worker dies here."""


class Log:
    """One topic: partitions of (key, value), append-only."""

    def __init__(self, name: str, partitions: int) -> None:
        self.name = name
        self.parts: list[list[tuple[bytes, bytes]]] = [[] for _ in range(partitions)]

    def append(self, key: bytes, value: bytes) -> None:
        self.parts[zlib.crc32(key) % len(self.parts)].append((key, value))


class Reader:
    """Reads a range of a partition back (what :class:`PartitionReader` does over Kafka)."""

    def __init__(self, log: Log) -> None:
        self.log = log

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[Message]:
        part = self.log.parts[partition]
        return [
            Message(topic, partition, o, part[o][0], part[o][1])
            for o in range(start, min(end, len(part)))
        ]


class Table:
    """A Faust table: the worker's copy (``data``) and the changelog it acknowledged."""

    def __init__(self, changelog: dict[str, bytes], budget: list[int]) -> None:
        self.data: dict[str, bytes] = dict(changelog)  # recovered from the changelog
        self.changelog = changelog
        self.budget = budget  # changelog records left before the worker dies

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def keys(self) -> list[str]:
        return list(self.data)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def send_changelog(
        self, partition: int, key: str, value: bytes | None, value_serializer: str | None = None
    ) -> asyncio.Future[None]:
        if self.budget[0] == 0:
            raise Crash
        self.budget[0] -= 1
        if value is None:
            self.changelog.pop(key, None)
        else:
            self.changelog[key] = value
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Event:
    """What a Faust stream delivers: a message of a partition."""

    def __init__(self, message: Message) -> None:
        self.message = message
        self.value = message.value


class Stage:
    """One agent over one input topic, with workers that die and come back."""

    def __init__(self, source: Log, rng: random.Random, make: Any) -> None:
        self.source = source
        self.rng = rng
        self.make = make  # store -> phase
        self.changelog: dict[str, bytes] = {}
        self.committed = [0] * len(source.parts)  # what Faust committed (may pass holes)
        self.crashes = 0
        self.start()

    def start(self) -> None:
        self.budget = [10**9]
        self.table = Table(self.changelog, self.budget)
        self.store = GroupedStore(self.table, self.entry_of)
        self.phase = self.make(self.store)
        self.order = InputOrder(self.source.name, self.store, Reader(self.source))

    entry_of = staticmethod(by_group)

    def deliver(self, partition: int) -> list[Event]:
        """A batch as Faust delivers it: from its committed offset, with repeats and holes."""
        part = self.source.parts[partition]
        out = []
        o = self.committed[partition]
        while o < len(part) and len(out) < self.rng.randint(1, 8):
            if self.rng.random() < 0.1:
                o += self.rng.randint(1, 3)  # a hole: skipped, and committed past
                continue
            out.append(Event(Message(self.source.name, partition, o, *part[o])))
            if self.rng.random() < 0.1:
                out.append(out[-1])  # delivered twice
            o += 1
        self.committed[partition] = min(o, len(part))
        return out

    async def run(self, apply: Any) -> None:
        """Until every partition is applied through its end, dying now and then."""
        while True:
            pending = [
                p
                for p, part in enumerate(self.source.parts)
                if (self.store.position(p) or 0) < len(part)
            ]
            if not pending:
                return
            p = self.rng.choice(pending)
            try:
                events = self.deliver(p)
                if events:
                    messages = await self.order.messages(events)
                    anchor = events[-1]
                else:  # nothing delivered: the hole check behind Faust's committed offset
                    messages = await self.order.holes_behind(p, self.committed[p]) or []
                    anchor = Anchor(self.source.name, p)
                if self.crashes == 0 and messages:
                    self.budget[0] = 0  # the first commit dies, always
                elif self.rng.random() < 0.15:
                    self.budget[0] = self.rng.randint(0, 3)  # dies while committing
                await apply(messages, anchor, self)
            except Crash:
                self.crashes += 1
                # Faust resumes where it last committed: behind the applied position (a
                # commit had not happened yet) or past it (it committed past a hole)
                self.committed = [
                    self.rng.randint(max(0, self.durable_position(q) - 3), c)
                    for q, c in enumerate(self.committed)
                ]
                self.start()

    def durable_position(self, partition: int) -> int:
        from crm_pulse.streams.embedded.state import loads_state

        raw = self.changelog.get(f"@{partition}")
        return 0 if raw is None else int(loads_state(raw))


class RecordStage(Stage):
    entry_of = staticmethod(by_record)


def _die_sometimes(rng: random.Random, p: float) -> None:
    if rng.random() < p:
        raise Crash


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10**6),
    order=st.integers(0, 10**6),
    faults=st.integers(0, 10**6),
    partitions=st.integers(1, 4),
)
def test_workers_dying_anywhere_publish_the_values_of_one_engine(
    seed: int, order: int, faults: int, partitions: int
) -> None:
    catalog = _catalog()
    as_of = T0 + 60 * DAY  # records dated after it: in no window yet
    events = shuffled(history(seed), order)  # out of order, repeated, equal versions
    rng = random.Random(faults)

    source = Log("events", partitions)
    for e in events:
        source.append("/".join(e.key).encode(), e.model_dump_json().encode())
    deltas = Log("deltas", partitions)
    published: dict[tuple[str, str, str], Any] = {}

    async def records(messages: list[Message], anchor: Any, stage: Stage) -> None:
        entries = [
            entry for m in messages for entry in stage.phase.entries(m.value, m.partition, m.offset)
        ]
        # one message per group and batch, as the agent sends them (at most 3 entries here, so
        # a batch re-processed after a crash often groups its entries differently)
        for key, body in pack(entries, most=rng.randint(1, 3)):
            deltas.append(key, body)  # sent and acknowledged
            _die_sometimes(rng, 0.02)
        stage.store.stage(anchor)
        _die_sometimes(rng, 0.1)
        await stage.store.commit()

    async def aggregates(messages: list[Message], anchor: Any, stage: Stage) -> None:
        for m in messages:
            stage.phase.apply(m.value)
        published.update(_keyed(stage.phase.changes(as_of)))  # sent and acknowledged
        stage.store.stage(anchor)
        _die_sometimes(rng, 0.1)
        await stage.store.commit()

    phase1 = RecordStage(source, rng, lambda s: RecordPhase(Engine(catalog, s, WINDOWS), s))
    phase2 = Stage(deltas, rng, lambda s: AggregatePhase(Engine(catalog, s, WINDOWS), s))

    async def main() -> None:
        await phase1.run(records)
        await phase2.run(aggregates)

    asyncio.run(main())

    single = Engine(catalog, windows=WINDOWS)
    single.apply_all(events)
    want = {k: v for k, v in _keyed(single.changes(as_of)).items() if v is not None}
    got = {k: v for k, v in published.items() if v is not None}
    assert got == want, sorted((k, got.get(k), want.get(k)) for k in set(got) ^ set(want))[:8]
    assert phase1.crashes > 0 or not events
    assert phase2.crashes > 0 or not any(deltas.parts)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10**6),
    order=st.integers(0, 10**6),
    faults=st.integers(0, 10**6),
    partitions=st.integers(1, 4),
)
def test_future_dated_records_come_due_on_the_time_tick(
    seed: int, order: int, faults: int, partitions: int
) -> None:
    """The clock moves while workers die: each aggregates batch moves the horizon only
    (``advance(now, mark_due=False)``, its values name its own groups), the time tick marks what
    came due and publishes it (as the Faust app does). Every calendar value of a metric placed
    by time ends equal to one engine's at the final time."""
    catalog = _catalog()
    events = shuffled(history(seed), order)  # dated over 120 days; the clock starts before
    rng = random.Random(faults)
    clock = [T0 - 5 * DAY]
    source = Log("events", partitions)
    for e in events:
        source.append("/".join(e.key).encode(), e.model_dump_json().encode())
    deltas = Log("deltas", partitions)
    published: dict[tuple[str, str, str], Any] = {}

    async def records(messages: list[Message], anchor: Any, stage: Stage) -> None:
        for m in messages:
            for key, body in stage.phase.apply(m.value, m.partition, m.offset):
                deltas.append(key, body)
        stage.store.stage(anchor)
        _die_sometimes(rng, 0.05)
        await stage.store.commit()

    def tick(stage: Stage) -> None:
        engine = stage.phase.engine
        if engine.advance(clock[0]):
            published.update(_keyed(engine.changes(clock[0], only_changed=False)))
        stage.store.rollback()  # the tick only reads

    async def aggregates(messages: list[Message], anchor: Any, stage: Stage) -> None:
        clock[0] += rng.randrange(0, 4) * DAY + rng.randrange(0, 24) * 3_600_000
        stage.phase.engine.advance(clock[0], mark_due=False)
        for m in messages:
            stage.phase.apply(m.value)
        published.update(_keyed(stage.phase.changes(clock[0])))
        stage.store.stage(anchor)
        _die_sometimes(rng, 0.1)
        await stage.store.commit()
        if rng.random() < 0.3:
            tick(stage)

    phase1 = RecordStage(source, rng, lambda s: RecordPhase(Engine(catalog, s, WINDOWS), s))
    phase2 = Stage(deltas, rng, lambda s: AggregatePhase(Engine(catalog, s, WINDOWS), s))

    async def main() -> None:
        await phase1.run(records)
        await phase2.run(aggregates)

    asyncio.run(main())
    clock[0] = max(clock[0], T0 + 125 * DAY)
    tick(phase2)

    single = Engine(catalog, windows=WINDOWS)
    single.advance(clock[0])
    single.apply_all(events)
    timed = {
        name
        for name, metric in catalog.metrics.items()
        if all(m.placement in ("timed", "stays") for m in metric.measures)
    }
    checked = 0
    for key, value in _keyed(single.report(clock[0])).items():
        if key[0] not in timed or key[1].startswith("last_"):
            continue
        if key not in published and value == 0:
            continue  # a window that never held data is reported as 0 but never "changed"
        assert published.get(key) == value, (key, published.get(key), value)
        checked += 1
    assert checked or not events


def test_a_late_older_event_that_only_moves_the_stage_history_still_counts() -> None:
    """Versions 1 and 3 of a deal arrive, then version 2 (a stage it passed through)."""
    catalog = _catalog()
    changelog1: dict[str, bytes] = {}
    changelog2: dict[str, bytes] = {}

    async def main() -> list[Any]:
        s1 = GroupedStore(Table(changelog1, [10**9]), by_record)
        s2 = GroupedStore(Table(changelog2, [10**9]), by_group)
        phase1 = RecordPhase(Engine(catalog, s1, WINDOWS), s1)
        phase2 = AggregatePhase(Engine(catalog, s2, WINDOWS), s2)
        single = Engine(catalog, windows=WINDOWS)
        sent: list[bytes] = []
        for offset, (version, stage, day) in enumerate(
            ((1, "s1", 0), (3, "s3", 20), (2, "s2", 10))
        ):
            raw = {
                "source": "s",
                "object": "deal",
                "id": "d1",
                "op": "upsert",
                "version": version,
                "fields": {
                    "stage": stage,
                    "stage_entered_at": _iso(T0 + day * DAY),
                    "owner_id": "u1",
                    "created_at": _iso(T0),
                    "status": "open",
                    "amount": "100",
                },
            }
            body = json.dumps(raw).encode()
            single.apply(_event(raw))
            for _key, out in phase1.apply(body, 0, offset):  # arrival order
                sent.append(out)
            s1.stage(Anchor("events", 0))
            await s1.commit()
        seqs = [e["o"] for m in sent for e in json.loads(m)["entries"]]
        applied = [phase2.apply(m) for m in sent]
        s2.stage(Anchor("deltas", 0))
        await s2.commit()
        assert applied == [True] * len(sent), seqs
        assert [phase2.apply(m) for m in sent] == [False] * len(sent)  # repeats change nothing
        return [phase2.changes(T0 + 30 * DAY), single.changes(T0 + 30 * DAY)]

    got, want = asyncio.run(main())
    late = [v for v in want if v.metric == "stage_duration" or "stage" in v.metric]
    assert late, "the catalog reports time in stage"
    values = {k: v for k, v in _keyed(got).items() if v is not None}
    assert values == {k: v for k, v in _keyed(want).items() if v is not None}


def test_malformed_messages_are_refused_with_a_reason() -> None:
    catalog = _catalog()
    store = GroupedStore(Table({}, [10**9]), by_group)
    phase1 = RecordPhase(Engine(catalog, store, WINDOWS), store)
    phase2 = AggregatePhase(Engine(catalog, store, WINDOWS), store)
    with pytest.raises(BadMessage, match="not a canonical event"):
        phase1.apply(b'{"source": "s"}', 0, 0)
    for bad in (b"{", b"[]", b'{"record": "r", "seq": 1, "deltas": [[1, 2]]}', b'{"seq": 1}'):
        with pytest.raises(BadMessage, match="not a delta message"):
            phase2.apply(bad)
    unknown = Delta(10_000, ("owner_id", "u1"), None, None, 1, 1).to_wire()
    with pytest.raises(BadMessage, match="measure"):
        phase2.apply(json.dumps({"record": "r", "seq": 1, "deltas": [unknown]}).encode())
    event = history(3, ties=False)[0]
    [(_key, good), *_] = phase1.apply(event.model_dump_json().encode(), 0, 0)
    assert phase2.apply(good)
    assert not phase2.apply(good)


def test_input_order_drops_repeats_and_reads_holes_back() -> None:
    log = Log("t", 1)
    for i in range(10):
        log.append(b"k", str(i).encode())
    store = GroupedStore(Table({}, [10**9]), by_group)
    order = InputOrder("t", store, Reader(log))

    def ev(o: int) -> Event:
        return Event(Message("t", 0, o, b"k", str(o).encode()))

    async def main() -> None:
        got = await order.messages([ev(0), ev(1), ev(1), ev(4)])  # 2 and 3 never delivered
        assert [m.offset for m in got] == [0, 1, 2, 3, 4]
        assert order.holes == 2
        await store.commit()
        assert store.position(0) == 5
        assert await order.messages([ev(3), ev(4)]) == []  # applied already
        # Faust committed through 8 but delivered nothing more: found behind its offset
        behind = await order.holes_behind(0, 9)
        assert behind is not None and [m.offset for m in behind] == [5, 6, 7, 8]
        await store.commit()
        assert await order.holes_behind(0, 9) is None
        # a range that holds fewer messages (say, transaction markers) is passed over once
        behind = await order.holes_behind(0, 12)  # offsets 10 and 11 hold no message
        assert behind is not None and [m.offset for m in behind] == [9]
        await store.commit()
        assert store.position(0) == 12
        assert await order.holes_behind(0, 12) is None

    asyncio.run(main())


def test_positions_are_committed_after_the_state_they_guard() -> None:
    changelog: dict[str, bytes] = {}
    table = Table(changelog, [1])  # dies after one changelog record
    store = GroupedStore(table, by_group)
    store.put(("b", 0, "g1", None), 1)
    store.put(("b", 0, "g2", None), 1)
    store.stage(Anchor("t", 0))
    store.set_position(0, 7, Anchor("t", 0))

    with pytest.raises(Crash):
        asyncio.run(store.commit())
    assert len(changelog) == 1 and not any(k.startswith("@") for k in changelog)


def _deployment(app_id: str) -> Deployment:
    """A Faust deployment writing to a file connector ``crm`` (no broker is contacted)."""
    return load_config_text(
        "connectors:\n  - file: {name: crm, path: out.jsonl}\n"
        "runtime:\n  kind: faust\n"
        f'  faust: {{app_id: {app_id}, broker: "kafka://127.0.0.1:1"}}\n',
        file="deploy.yaml",
        resolve_secrets=False,
    )


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event(raw: dict[str, Any]) -> Any:
    from crm_pulse.metrics.events import Event as Canonical

    return Canonical.model_validate(raw)


def test_malformed_field_values_are_refused_with_a_reason() -> None:
    pipeline = FaustPipeline(_deployment("values-test"), sinks={"crm": object()})
    good = {"connector": "crm", "object": "User", "record_id": "u1", "field": "f", "value": 0.5}
    assert pipeline.writer.field_write(json.dumps(good).encode()).value == 0.5
    for bad, why in (
        (b"{", "Expecting"),
        (b"[1]", "argument"),
        (json.dumps({**good, "value": "high"}).encode(), "number or null"),
        (json.dumps({**good, "value": True}).encode(), "number or null"),
        (json.dumps({**good, "record_id": 7}).encode(), "strings"),
        (json.dumps({**good, "connector": "other"}).encode(), "no connector named 'other'"),
    ):
        with pytest.raises(ValueError, match=why):
            pipeline.writer.field_write(bad)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(faults=st.integers(0, 10**6))
def test_the_writer_ends_with_every_final_value_and_repeats_only_after_a_crash(
    faults: int,
) -> None:
    """The writer stage over a values log full of repeats (the aggregates stage publishes every
    value a batch touched), dying half-way through its changelog commits now and then."""
    rng = random.Random(faults)
    deployment = _deployment("writer-test")
    fields = [f"f{i}" for i in range(4)]
    log = [
        json.dumps(
            {
                "connector": "crm",
                "object": "User",
                "record_id": "u1",
                "field": rng.choice(fields),
                "value": rng.choice([1, 2, None]),
            }
        ).encode()
        for _ in range(120)
    ]
    sink = ScriptedSink()
    changelog: dict[str, bytes] = {}
    crashes = 0

    def pending() -> bool:
        return any(not k.startswith("@") and _has_pending(v) for k, v in changelog.items())

    async def main() -> None:
        nonlocal crashes
        applied = 0  # the durable position
        while applied < len(log) or pending():
            pipeline = FaustPipeline(deployment, sinks={"crm": sink})
            budget = [10**9]
            pipeline.writer.store = GroupedStore(Table(changelog, budget), by_group)
            try:
                await pipeline.writer.reload(frozenset({0}))  # what is pending, from the table
                while applied < len(log) or pending():
                    if rng.random() < 0.2:
                        budget[0] = rng.randint(0, 2)  # dies while recording
                    if applied < len(log) and rng.random() < 0.6:
                        n = rng.randint(1, 10)
                        batch = [
                            Message("values", 0, o, b"k", log[o])
                            for o in range(applied, min(applied + n, len(log)))
                        ]
                        await pipeline.writer.apply([(Anchor("values", 0), batch)])
                        applied += len(batch)
                    else:  # the writing task's round: the CRM, then the outcomes recorded
                        await pipeline.writer.flush()
            except Crash:
                crashes += 1
            finally:
                pipeline.outbox_db.close()

    asyncio.run(main())

    final: dict[str, Any] = {}
    for raw in log:
        row = json.loads(raw)
        final[row["field"]] = row["value"]
    assert {f: sink.values.get(("User", "u1", f)) for f in final} == final
    repeats = 0
    last: dict[str, Any] = {}
    for call in sink.calls:
        for w in call:
            if w.field in last and last[w.field] == w.value:
                repeats += 1
            last[w.field] = w.value
    assert repeats <= crashes * len(fields)  # a repeat only for what a crash left unrecorded


def _has_pending(raw: bytes) -> bool:
    from crm_pulse.streams.embedded.state import loads_state

    return any(k[0] == "p" for k in dict(loads_state(raw)))


def test_a_failed_aggregates_batch_leaves_nothing_for_the_next_one() -> None:
    pipeline = FaustPipeline(_deployment("rollback-test"), sinks={"crm": object()})
    store = GroupedStore(Table({}, [10**9]), by_group)
    engine = Engine(pipeline.catalog, store, WINDOWS)
    pipeline.aggregates.phase = AggregatePhase(engine, store)
    phase1 = RecordPhase(Engine(pipeline.catalog, windows=WINDOWS), store)
    [(_key, body), *_] = phase1.apply(history(3, ties=False)[0].model_dump_json().encode(), 0, 0)
    AggregatePhase(engine, store).apply(body)
    store.set_position(0, 1, Anchor("deltas", 0))

    pipeline.aggregate_stage.rollback()  # what a failed batch does

    assert engine.changes(T0, only_changed=False) == []  # no bucket left marked as moved
    assert store.position(0) is None and store.cache == {} and store.staged == []


def test_messages_read_back_are_acknowledged_to_faust_after_their_batch_commits() -> None:
    """Faust commits a partition's offset only up to its first unacknowledged message, and it
    never saw the messages of a hole (it did not deliver them): unless the agent acknowledges
    them once applied, the group's committed offset stays at the hole for ever."""
    pipeline = FaustPipeline(_deployment("ack-test"), sinks={"crm": object()})
    log = Log("t", 1)
    for i in range(10):
        log.append(b"k", str(i).encode())
    stage = pipeline.record_stage
    stage.order = InputOrder("t", GroupedStore(Table({}, [10**9]), by_group), Reader(log))
    applied: list[int] = []
    acked: list[int] = []

    class Consumer:
        def ack(self, message: Any) -> bool:
            assert applied, "acknowledged before the batch was applied"
            acked.append(message.offset)
            return True

    async def apply(parts: Any) -> None:
        applied.extend(m.offset for _anchor, messages in parts for m in messages)

    pipeline.app.consumer = Consumer()
    stage.apply = apply
    delivered = [Message("t", 0, o, b"k", str(o).encode()) for o in (0, 1, 5, 6)]
    asyncio.run(pipeline._ordered(stage, delivered))
    assert applied == [0, 1, 2, 3, 4, 5, 6]
    assert acked == [2, 3, 4]  # Faust acknowledges the ones it delivered itself

    async def fail(parts: Any) -> None:
        raise RuntimeError("the batch failed")

    stage.apply = fail
    acked.clear()
    with pytest.raises(RuntimeError):
        asyncio.run(pipeline._ordered(stage, [Message("t", 0, 9, b"k", b"9")]))
    assert acked == []  # not committed: not acknowledged


def test_a_worker_publishes_zero_for_a_group_whose_data_is_all_in_earlier_windows() -> None:
    """An account whose wins are all in earlier quarters has won revenue 0 this quarter (replay
    has that row): the aggregates stage publishes it the first time the group's buckets move,
    on a worker that just took the group over as on one that always had it."""
    import time

    deployment = load_config_text(
        "connectors:\n  - file: {name: crm, path: out.jsonl}\n"
        "writeback:\n"
        "  - {metric: won_revenue, window: quarter, group: account_id,"
        " target: {connector: crm, object: Account, field: won_qtd}}\n"
        "runtime:\n  kind: faust\n"
        '  faust: {app_id: zeros-test, broker: "kafka://127.0.0.1:1"}\n',
        file="deploy.yaml",
        resolve_secrets=False,
    )
    pipeline = FaustPipeline(deployment, sinks={"crm": object()})
    windows = deployment.window_specs()
    records = GroupedStore(Table({}, [10**9]), by_record)
    phase1 = RecordPhase(Engine(pipeline.catalog, records, windows), records)
    groups = GroupedStore(Table({}, [10**9]), by_group)
    pipeline.aggregates.phase = AggregatePhase(
        Engine(pipeline.catalog, groups, windows), groups, pipeline.planner.wanted
    )
    published: dict[str, Any] = {}

    class Values:
        async def send_all(self, messages: Any) -> None:
            for _key, value, _partition in messages:
                row = json.loads(value)
                published[row["record_id"]] = row["value"]

    pipeline.aggregates.values = Values()
    now = time.time()

    def won(i: int, account: str, closed: float) -> bytes:
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(closed))
        fields = {"account_id": account, "status": "won", "amount": "100", "closed_at": at}
        return json.dumps(
            {"source": "s", "object": "deal", "id": str(i), "op": "upsert", "version": 1}
            | {"fields": {**fields, "owner_id": "u1", "created_at": at, "type": "new"}}
        ).encode()

    bodies = [won(1, "a1", now - 200 * 86_400), won(2, "a2", now - 3600)]
    messages = [
        Message("deltas", 0, o, key, body)
        for o, (key, body) in enumerate(
            out for i, b in enumerate(bodies) for out in phase1.apply(b, 0, i)
        )
    ]
    asyncio.run(pipeline.aggregates.apply([(Anchor("deltas", 0), messages)]))
    assert published == {"a1": 0, "a2": 100}


def test_poison_events_are_bad_messages_never_an_agent_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 13: what the embedded runtime quarantines, a Faust worker dead-letters (and counts
    in ``dead_lettered``); no poison event raises anything else out of the record phase."""
    catalog = _catalog()
    store = GroupedStore(Table({}, [10**9]), by_group)
    phase1 = RecordPhase(Engine(catalog, store, WINDOWS), store)
    good = next(e for e in history(20) if e.op == "upsert").model_dump(mode="json")
    for fields in (
        {"owner_id": "x\ud800"},
        {"closed_at": "9999-12-31T23:59:59-14:00"},
        {"closed_at": "0001-01-01T00:00:00Z"},
        {"amount": 10**300},
    ):
        body = json.dumps({**good, "fields": {**good["fields"], **fields}}).encode()
        with pytest.raises(BadMessage, match="not a canonical event"):
            phase1.apply(body, 0, 0)
    with pytest.raises(BadMessage, match=r"nested|not a canonical event"):
        phase1.apply(b"[" * 100_000 + b"]" * 100_000, 0, 0)

    def broken(event: Any) -> Any:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(phase1.engine, "deltas", broken)
    with pytest.raises(BadMessage, match="the engine failed on it: OverflowError"):
        phase1.apply(json.dumps(good).encode(), 0, 1)


def test_a_partition_writes_nothing_before_every_first_read_marker_arrived(
    tmp_path: Any,
) -> None:
    """The planner's first-read rule across Kafka: events of a pulling source go through both
    phases and publish nothing; the edge's markers (one per events partition) pass phase 1 to
    every deltas partition, and the partition that holds all of them publishes its groups'
    whole values at once."""
    from aiokafka.partitioner import DefaultPartitioner

    from crm_pulse.streams.faust.phases import FIRST_READ, first_read_marker

    (tmp_path / "in.jsonl").write_text("")
    deployment = load_config_text(
        f'connectors:\n  - file: {{name: crm, path: "{tmp_path}/out.jsonl", '
        f'input: "{tmp_path}/in.jsonl"}}\n'
        "writeback:\n  - {metric: deals_won, window: month, group: owner_id, "
        "target: {connector: crm, object: User, field: won}}\n"
        "runtime:\n  kind: faust\n"
        '  faust: {app_id: first-read-test, broker: "kafka://127.0.0.1:1", partitions: 2}\n',
        file="deploy.yaml",
        resolve_secrets=False,
    )
    pipeline = FaustPipeline(deployment, sinks={"crm": object()})
    assert pipeline.pulled == ["crm"]
    rstore = GroupedStore(Table({}, [10**9]), by_record)
    astore = GroupedStore(Table({}, [10**9]), by_group)
    windows = deployment.window_specs()
    pipeline.records.store = rstore
    pipeline.records.phase = RecordPhase(Engine(pipeline.catalog, rstore, windows), rstore)
    pipeline.aggregates.phase = AggregatePhase(
        Engine(pipeline.catalog, astore, windows), astore, pipeline.planner.wanted
    )
    deltas: list[list[tuple[bytes, bytes]]] = [[], []]
    published: list[dict[str, Any]] = []
    every = [0, 1]

    async def send_deltas(messages: Any) -> None:
        for key, value, partition in messages:
            p = partition if partition is not None else DefaultPartitioner()(key, every, every)
            deltas[p].append((key, value))

    async def publish(writes: Any) -> None:
        published.extend({"record": w.record_id, "value": w.value} for w in writes if w.record_id)

    pipeline.records.deltas = type("T", (), {"send_all": staticmethod(send_deltas)})()
    pipeline.aggregates.publish = publish  # type: ignore[method-assign]
    import time as _time

    now = int(_time.time() * 1000)
    events = [
        _event(
            {
                "source": "crm",
                "object": "deal",
                "id": str(i),
                "op": "upsert",
                "version": 1,
                "fields": {
                    "owner_id": f"u{i % 3}",
                    "status": "won",
                    "amount": "10",
                    "created_at": _iso(now - 2 * DAY),
                    "closed_at": _iso(now - 1000),
                },
            }
        )
        for i in range(30)
    ]

    async def records(partition: int, messages: list[tuple[bytes, bytes]], start: int) -> None:
        batch = [Message("events", partition, start + o, k, v) for o, (k, v) in enumerate(messages)]
        await pipeline.records.apply([(Anchor("events", partition), batch)])

    async def aggregates(partition: int, start: int) -> int:
        part = deltas[partition]
        batch = [Message("deltas", partition, o, k, v) for o, (k, v) in enumerate(part)]
        await pipeline.aggregates.apply([(Anchor("deltas", partition), batch[start:])])
        return len(part)

    async def main() -> None:
        for p in (0, 1):  # the events, spread over both events partitions
            mine = [e for e in events if int(e.id) % 2 == p]
            await records(p, [(e.id.encode(), e.model_dump_json().encode()) for e in mine], 0)
        seen = [await aggregates(q, 0) for q in (0, 1)]
        assert published == []  # every group applied, nothing published: no first read yet
        await records(0, [(FIRST_READ, first_read_marker("crm"))], 15)
        seen = [await aggregates(q, seen[q]) for q in (0, 1)]
        assert published == []  # one events partition of two has its marker
        await records(1, [(FIRST_READ, first_read_marker("crm"))], 15)
        for q in (0, 1):
            await aggregates(q, seen[q])

    asyncio.run(main())
    assert sorted((w["record"], w["value"]) for w in published) == [
        ("u0", 10),
        ("u1", 10),
        ("u2", 10),
    ]


def test_bulk_changelog_keys_are_the_keys_faust_writes_and_reads() -> None:
    """Recovery and standby replicas decode our changelog records with the table's own key
    serializer: the bytes must be those Faust's ``send_changelog`` would write."""
    import faust

    from crm_pulse.streams.faust.bulk import BulkChangelog

    app = faust.App("keys-test", broker="kafka://127.0.0.1:1", store="memory://")
    table = app.Table("records", key_type=str, value_type=bytes, partitions=2)
    written: list[tuple[str, int, list[tuple[bytes, bytes | None]]]] = []

    class Output:
        async def append(self, topic: str, partition: int, records: Any) -> int:
            written.append((topic, partition, list(records)))
            return 7

    keys = ["('crm', 'deal', '1')", "('crm', 'deal', 'é☃/x')", "@0"]
    changelog = BulkChangelog(table, Output())  # type: ignore[arg-type]
    asyncio.run(changelog.write({1: [(k, b"v") for k in keys]}))
    [(topic, partition, records)] = written
    assert (topic, partition) == ("keys-test-records-changelog", 1)
    faust_keys = [table.changelog_topic.prepare_key(k, None, None, {})[0] for k in keys]
    assert [k for k, _v in records] == faust_keys


def test_a_partition_faust_stopped_delivering_is_read_from_kafka(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a take-over a survivor was seen idle with messages waiting in a partition it had
    taken over: Faust delivered none of them and its committed offset showed no hole. The
    hole check compares each stage's position with the partition's end: a position that did
    not move for a whole check interval while messages wait is read from Kafka, applied,
    and acknowledged to Faust."""
    from faust.types import TP

    from crm_pulse.streams.faust.timers import Timers

    pipeline = FaustPipeline(_deployment("stall-test"), sinks={"crm": object()})
    stage = pipeline.record_stage
    topic = stage.order.topic
    log = Log(topic, 1)
    for i in range(10):
        log.append(b"k", str(i).encode())
    store = GroupedStore(Table({}, [10**9]), by_group)
    stage.order = InputOrder(topic, store, Reader(log))
    applied: list[int] = []
    acked: list[int] = []
    tp = TP(topic, 0)

    async def apply(parts: Any) -> None:
        applied.extend(m.offset for _anchor, messages in parts for m in messages)
        await store.commit()

    class Consumer:
        def assignment(self) -> set[TP]:
            return {tp}

        async def highwaters(self, *tps: TP) -> dict[TP, int]:
            return {t: len(log.parts[0]) for t in tps}

        def ack(self, message: Any) -> bool:
            acked.append(message.offset)
            return True

    stage.apply = apply
    pipeline.app.consumer = Consumer()
    monkeypatch.setattr(Timers, "settled", lambda self, generation: True)

    async def committed(tps: Any) -> dict[TP, int | None]:
        return {tp: 3}  # Faust committed what it delivered: no hole

    timers = Timers(pipeline, committed=committed)

    async def main() -> None:
        delivered = [Message(topic, 0, o, b"k", str(o).encode()) for o in (0, 1, 2)]
        await pipeline._ordered(stage, delivered)
        assert applied == [0, 1, 2] and store.position(0) == 3
        await timers.holes()  # messages wait: one interval to see whether Faust delivers them
        assert applied == [0, 1, 2]
        await pipeline._ordered(stage, [Message(topic, 0, 3, b"k", b"3")])
        await timers.holes()  # it moved: still not stalled
        assert applied == [0, 1, 2, 3]
        await timers.holes()  # no progress for a whole interval: read from Kafka
        assert applied == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] and store.position(0) == 10
        assert acked == [4, 5, 6, 7, 8, 9]
        await timers.holes()  # at the end: nothing more
        assert applied == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        # Faust delivers them late after all: applied already, dropped
        late = [Message(topic, 0, o, b"k", str(o).encode()) for o in (4, 5)]
        await pipeline._ordered(stage, late)
        assert applied == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]

    asyncio.run(main())


def test_a_stopping_worker_applies_nothing_and_checks_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Faust closes a worker's tables before its agents and timers end: a batch or a hole
    check then would read empty tables (position 0, groups without buckets) and commit entries
    built on them. Once the worker is stopping, neither runs."""
    from faust.types import TP

    from crm_pulse.streams.faust.timers import Timers

    pipeline = FaustPipeline(_deployment("stop-test"), sinks={"crm": object()})
    stage = pipeline.record_stage
    topic = stage.order.topic
    applied: list[int] = []
    asked: list[int] = []

    async def apply(parts: Any) -> None:
        applied.extend(m.offset for _anchor, messages in parts for m in messages)

    class Consumer:
        def assignment(self) -> set[TP]:
            return {TP(topic, 0)}

        async def highwaters(self, *tps: TP) -> dict[TP, int]:
            asked.append(1)
            return {t: 60 for t in tps}

    stage.apply = apply
    pipeline.app.consumer = Consumer()
    monkeypatch.setattr(type(pipeline.app), "rebalancing", False, raising=False)
    pipeline.app._stopped.set()  # the worker received SIGTERM
    assert not Timers(pipeline).settled(pipeline.app.consumer_generation_id)
    delivered = [Message(topic, 0, o, b"k", b"v") for o in (7, 8)]
    asyncio.run(pipeline._ordered(stage, delivered))

    async def committed(tps: Any) -> dict[TP, int | None]:
        asked.append(2)
        return {TP(topic, 0): 50}

    asyncio.run(Timers(pipeline, committed=committed).holes())
    assert applied == [] and asked == []


def test_an_engine_failure_in_phase_two_is_a_bad_message_not_an_agent_failure() -> None:
    """Whatever the engine raises on a delta message (a state it cannot read, say) sends that
    message to the dead letters with the reason; the agent goes on."""
    store = GroupedStore(Table({}, [10**9]), by_group)
    engine = Engine(_catalog(), store, WINDOWS)
    phase2 = AggregatePhase(engine, store)
    records = GroupedStore(Table({}, [10**9]), by_record)
    phase1 = RecordPhase(Engine(_catalog(), records, WINDOWS), records)
    event = history(3, ties=False)[0]
    [(_key, message), *_] = phase1.apply(event.model_dump_json().encode(), 0, 0)

    def broken(deltas: Any) -> None:
        raise ZeroDivisionError("a bucket the engine cannot read")

    engine.apply_deltas = broken  # type: ignore[method-assign]
    with pytest.raises(BadMessage, match="the engine failed on it: ZeroDivisionError"):
        phase2.apply(message)
