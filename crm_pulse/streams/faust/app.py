"""The Faust runtime: the same engine, partitioned across workers on Kafka.

::

    events (key: record)  ──agent records──▶  deltas (key: metric group)  ──agent aggregates──▶
    values (key: CRM field)  ──agent writer──▶  CRM sinks            poison ──▶ dead letters

* ``records`` runs phase 1 (:class:`~.phases.RecordPhase`): each record's state in the
  ``records`` table, contribution deltas out, one message per metric group, numbered per record.
* ``aggregates`` runs phase 2 (:class:`~.phases.AggregatePhase`): the group's buckets in the
  ``aggregates`` table, each numbered message applied once; asks the engine what changed, plans
  the field writes with the shared :class:`~crm_pulse.streams.writeback.Planner`, publishes them.
* ``writer`` coalesces values in the shared outbox and writes them with the shared
  :class:`~crm_pulse.streams.writeback.Writer` (vendor batch sizes, backoff, Retry-After, dead
  letters, no write of an unchanged value).

Nothing lost, nothing counted twice, with a worker killed at any moment:

1. each agent sends its output and waits for Kafka's acknowledgement *before* its state moves;
2. its state is committed before Faust may commit the input offsets, and the commit waits for
   the changelog's acknowledgement (:mod:`.stores`);
3. it keeps its own position in each input partition, so a message Faust skipped is read back
   and a message delivered twice is dropped (:mod:`.order`);
4. re-processing after a crash sends the same numbered messages again, which the next stage
   recognises (:mod:`.phases`), or rewrites the same field value.

Agents run with concurrency 1 (faust-streaming issue #606). A message that cannot be applied goes
to the ``dead-letters`` topic with the reason, and the stream goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import faust
from aiokafka.partitioner import DefaultPartitioner

from ...config.models import Deployment
from ...connectors.protocols import FieldWrite
from ...errors import ConfigError, ConfigProblem
from ...metrics.deltas import group_key
from ...metrics.engine import Engine
from ...metrics.events import Event
from ...metrics.measures import Group
from ..database import Database
from ..writeback import Backoff, Planner, SQLiteOutbox, Writer
from .order import Anchor, InputOrder, Message, PartitionReader
from .phases import AggregatePhase, BadMessage, RecordPhase, pack
from .stores import GroupedStore, by_group, by_record

__all__ = ["FaustPipeline", "create_app", "event_key", "target_key"]

BATCH = 2000
BATCH_WINDOW = 0.05  # seconds an agent waits to fill a batch
HOLE_CHECK = 2.0  # seconds between checks for messages Faust committed without delivering

log = logging.getLogger("crm_pulse.faust")


def kafka_servers(broker: str) -> list[str]:
    """``kafka://host:port;kafka://host2:port`` -> ``["host:port", "host2:port"]``."""
    return [u.split("://", 1)[-1] for u in broker.split(";") if u]


def event_key(event: Event) -> bytes:
    return "/".join(event.key).encode()


def target_key(w: FieldWrite) -> bytes:
    return "/".join((w.connector, w.object, w.record_id, w.field)).encode()


class FaustPipeline:
    """The app, its topics, tables and agents for one deployment."""

    def __init__(
        self,
        deployment: Deployment,
        *,
        sinks: dict[str, Any] | None = None,
        broker: str | None = None,
        data_dir: Path | None = None,
    ) -> None:
        settings = deployment.runtime.faust
        self.deployment = deployment
        if settings.store == "rocksdb":
            _require_rocksdict()
        store = "rocksdb://" if settings.store == "rocksdb" else "memory://"
        options: dict[str, Any] = {} if data_dir is None else {"datadir": str(data_dir)}
        self.app = faust.App(
            settings.app_id,
            broker=broker or settings.broker,
            store=store,
            topic_partitions=settings.partitions,
            topic_replication_factor=1,
            table_standby_replicas=settings.standby_replicas,
            processing_guarantee=settings.processing_guarantee,
            consumer_auto_offset_reset="earliest",
            web_enabled=False,
            broker_session_timeout=10.0,
            broker_heartbeat_interval=1.0,
            broker_commit_every=100,
            broker_commit_interval=1.0,
            stream_wait_empty=True,  # a rebalance waits for in-flight batches to commit
            **options,
        )
        self.events = self._topic("events", settings.partitions)
        self.deltas = self._topic("deltas", settings.partitions)
        self.values = self._topic("values", settings.partitions)
        self.dead = self._topic("dead-letters", 1)
        self.record_table = self.app.Table(
            "records", key_type=str, value_type=bytes, partitions=settings.partitions
        )
        self.aggregate_table = self.app.Table(
            "aggregates", key_type=str, value_type=bytes, partitions=settings.partitions
        )
        self.writer_table = self.app.Table(  # last value written per field, input positions
            "writer", key_type=str, value_type=bytes, partitions=settings.partitions
        )
        self.catalog = deployment.catalog()
        windows = deployment.window_specs()
        self.record_store = GroupedStore(self.record_table, by_record)
        self.aggregate_store = GroupedStore(self.aggregate_table, by_group)
        self.writer_store = GroupedStore(self.writer_table, by_group)
        self.record_engine = Engine(self.catalog, self.record_store, windows)
        self.aggregate_engine = Engine(self.catalog, self.aggregate_store, windows)
        self.record_phase = RecordPhase(self.record_engine, self.record_store)
        self.planner = Planner(deployment.writeback, self.catalog)
        self.aggregate_phase = AggregatePhase(
            self.aggregate_engine, self.aggregate_store, self.planner.wanted
        )
        self.sinks = sinks if sinks is not None else self._build_sinks()
        self.outbox_db = Database(":memory:")
        retry = deployment.runtime.retry
        self.writers = {
            name: Writer(
                name,
                sink,
                SQLiteOutbox(self.outbox_db),
                Backoff(retry.initial, retry.max, retry.attempts),
            )
            for name, sink in self.sinks.items()
        }
        self.debounce = max(0.05, deployment.runtime.debounce)
        reader = PartitionReader(kafka_servers(str(self.app.conf.broker[0])))
        self.record_stage = _Stage(
            InputOrder(self.events.get_topic_name(), self.record_store, reader),
            self._apply_records,
            self.record_store.rollback,
        )
        self.aggregate_stage = _Stage(
            InputOrder(self.deltas.get_topic_name(), self.aggregate_store, reader),
            self._apply_aggregates,
            self._rollback_aggregates,
        )
        self.writer_stage = _Stage(
            InputOrder(self.values.get_topic_name(), self.writer_store, reader),
            self._apply_writes,
            self.writer_store.rollback,
        )
        self._ticked_generation = -1  # the consumer generation of the last time tick
        self._register()

    def _topic(self, suffix: str, partitions: int) -> Any:
        """A topic of raw bytes that Faust creates with these partitions at start."""
        return self.app.topic(
            f"{self.app.conf.id}-{suffix}",
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
            internal=True,
        )

    def _build_sinks(self) -> dict[str, Any]:
        from ..runtime import build_connectors

        return {
            n: c.sink for n, c in build_connectors(self.deployment).items() if c.sink is not None
        }

    # ------------------------------------------------------------ agents
    def _register(self) -> None:
        app = self.app
        app.agent(self.events, name="records", concurrency=1)(self._records)
        app.agent(self.deltas, name="aggregates", concurrency=1)(self._aggregates)
        app.agent(self.values, name="writer", concurrency=1)(self._writer)
        app.timer(interval=max(1.0, self.deployment.runtime.tick), name="time")(self._tick)
        app.timer(interval=HOLE_CHECK, name="holes")(self._holes)
        topic = self.events.get_topic_name()

        async def assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            tps = args[0] if args else kwargs.get("assigned", ())
            mine = sorted(tp.partition for tp in tps if tp.topic == topic)
            log.info("this worker now takes partitions %s of %s", mine, topic)

        app.on_partitions_assigned.connect(assigned)

    async def _dead_letter(self, reason: str, message: Message) -> Any:
        payload = {
            "reason": reason,
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "value": (message.value or b"").decode("utf-8", "replace")[:10_000],
        }
        future = await self.dead.send(key=message.key, value=json.dumps(payload).encode())
        log.warning(
            "message moved to the dead letters: %s", reason, extra={"offset": message.offset}
        )
        return future

    @staticmethod
    def _by_partition(batch: Sequence[Any]) -> list[list[Any]]:
        parts: dict[int, list[Any]] = {}
        for event in batch:
            parts.setdefault(event.message.partition, []).append(event)
        return list(parts.values())

    async def _ordered(self, stage: _Stage, batch: Sequence[Any]) -> None:
        """One delivered batch: per partition, the messages still to apply, then the stage."""
        try:
            parts = []
            for events in self._by_partition(batch):
                messages = await stage.order.messages(events)
                if messages:
                    parts.append((events[-1], messages))
            if parts:
                await stage.apply(parts)
            self._acknowledge(stage.order.take_repaired())
        except BaseException:
            stage.rollback()  # nothing half-done is committed later: positions included
            stage.order.take_repaired()
            raise

    def _acknowledge(self, messages: Sequence[Message]) -> None:
        """Acknowledge messages read back from Kafka (and now committed) to Faust's consumer, so
        that its committed offset moves past the hole they filled (see
        :meth:`.InputOrder.take_repaired`)."""
        if not messages:
            return
        from faust.types import TP
        from faust.types import Message as FaustMessage

        consumer = self.app.consumer
        for m in messages:
            tp = TP(m.topic, m.partition)
            consumer.ack(
                FaustMessage(
                    m.topic, m.partition, m.offset, 0.0, 0, [], m.key, m.value, None, tp=tp
                )
            )

    async def _records(self, stream: Any) -> None:
        async for batch in stream.take_events(BATCH, within=BATCH_WINDOW):
            async with self.record_stage.lock:
                await self._ordered(self.record_stage, batch)

    async def _aggregates(self, stream: Any) -> None:
        async for batch in stream.take_events(BATCH, within=BATCH_WINDOW):
            async with self.aggregate_stage.lock:  # the timers never see half a batch
                await self._ordered(self.aggregate_stage, batch)

    async def _writer(self, stream: Any) -> None:
        async for batch in stream.take_events(200, within=self.debounce):
            async with self.writer_stage.lock:
                await self._ordered(self.writer_stage, batch)

    async def _holes(self) -> None:
        """Messages Faust committed past without delivering them (see :mod:`.order`)."""
        app = self.app
        consumer = app.consumer
        committed = getattr(consumer, "_committed_offset", None)  # Faust keeps no public view
        if committed is None:
            return

        settled = self._settled
        generation = app.consumer_generation_id
        for stage in (self.record_stage, self.aggregate_stage, self.writer_stage):
            for tp in consumer.assignment():
                if tp.topic != stage.order.topic or not settled(generation):
                    continue
                async with stage.lock:
                    try:
                        found = await stage.order.holes_behind(tp.partition, committed.get(tp))
                        if found is not None and settled(generation):  # it may have moved
                            await stage.apply([(Anchor(tp.topic, tp.partition), found)])
                    finally:
                        stage.rollback()  # nothing staged outlives the check

    def _settled(self, generation: int) -> bool:
        """No rebalance started or under way since ``generation``, tables recovered."""
        app = self.app
        return (
            not app.rebalancing
            and cast(Any, app.tables).recovery.completed.is_set()
            and app.consumer_generation_id == generation
        )

    # ------------------------------------------------------------ stages
    async def _apply_records(self, parts: Sequence[tuple[Any, list[Message]]]) -> None:
        """Phase 1: deltas out (acknowledged), then the record states."""
        sent = []
        entries: list[tuple[bytes, dict[str, Any]]] = []
        for anchor, messages in parts:
            for message in messages:
                try:
                    entries.extend(
                        self.record_phase.entries(message.value, message.partition, message.offset)
                    )
                except BadMessage as exc:
                    sent.append(await self._dead_letter(str(exc), message))
            self.record_store.stage(anchor)
        for key, body in pack(entries):  # one message per metric group and batch
            sent.append(await self.deltas.send(key=key, value=body))
        for future in sent:
            await future  # acknowledged by Kafka before the state moves on
        await self.record_store.commit()  # state durable before the offsets can move

    async def _apply_aggregates(self, parts: Sequence[tuple[Any, list[Message]]]) -> None:
        """Phase 2: values out (acknowledged), then the buckets."""
        now = int(time.time() * 1000)
        writes: list[FieldWrite] = []
        sent = []
        for anchor, messages in parts:
            for message in messages:
                try:
                    self.aggregate_phase.apply(message.value)
                except BadMessage as exc:
                    sent.append(await self._dead_letter(str(exc), message))
            # the groups of one partition: their reported values live in that partition
            writes.extend(
                self.planner.plan(self.aggregate_phase.changes(now), now, self.aggregate_engine)
            )
            self.aggregate_store.stage(anchor)
        for future in sent:
            await future
        await self._publish(writes)
        await self.aggregate_store.commit()  # state durable before the offsets can move

    def _rollback_aggregates(self) -> None:
        # the engine's memory of moved buckets goes too: it may name groups of a partition
        # whose batch failed, and the next batch must not record them under its own partition
        self.aggregate_store.rollback()
        self.aggregate_engine.forget_changes()
        self.planner.forget_covered()  # the values it planned were not published

    async def _apply_writes(self, parts: Sequence[tuple[Any, list[Message]]]) -> None:
        """Write the values that differ from what was last written, then remember them.

        The last written value of each field lives in the ``writer`` table (in the partition of
        the field's values), so a repeat is dropped whichever worker wrote it before. A field
        about to be written is first recorded as unknown, so that a worker dying between the CRM
        call and the record leaves it unknown (and the next value is written) rather than
        recorded with the value before. Values are coalesced in the shared outbox and written
        by the shared writer.
        """
        batches: list[tuple[Any, list[FieldWrite]]] = []
        sent = []
        for anchor, messages in parts:
            ws = []
            for m in messages:
                try:
                    ws.append(self._field_write(m.value))
                except ValueError as exc:
                    sent.append(await self._dead_letter(f"not a field value: {exc}", m))
            batches.append((anchor, ws))
        for future in sent:
            await future
        store = self.writer_store
        known = {_field(w): store.get(_written_key(w)) for _, ws in batches for w in ws}
        now = time.time()

        def plan(conn: Any) -> set[tuple[str, ...]]:
            conn.execute("DELETE FROM written")
            conn.executemany(
                "INSERT INTO written VALUES (?, ?, ?, ?, ?, 0)",
                [(*f, v) for f, v in known.items() if v is not None],
            )
            SQLiteOutbox.put(conn, [w for _, ws in batches for w in ws], now, 0.0)
            rows = conn.execute("SELECT connector, object, record_id, field FROM outbox")
            return {tuple(r) for r in rows}

        def written(conn: Any) -> dict[tuple[str, ...], str]:
            rows = conn.execute("SELECT connector, object, record_id, field, value FROM written")
            return {tuple(r[:4]): r[4] for r in rows}

        due = await self.outbox_db.run(self.outbox_db.transaction(plan))
        if due:  # recorded as unknown before the CRM sees them (positions stay put)
            for anchor, ws in batches:
                for w in ws:
                    if _field(w) in due:
                        store.put(_written_key(w), _UNKNOWN)
                store.stage(anchor)
            await store.commit(positions=False)
        for writer in self.writers.values():
            await self._flush(writer)
        now_written = await self.outbox_db.run(self.outbox_db.transaction(written))
        for anchor, ws in batches:
            for w in ws:
                f = _field(w)
                value = now_written.get(f)
                if f in due and value is not None:
                    store.put(_written_key(w), value)
            store.stage(anchor)  # under the partition of these fields' values
        await store.commit()  # the fields and positions, once every value is written

    def _field_write(self, value: bytes | None) -> FieldWrite:
        try:
            raw = json.loads(value or b"")
            w = FieldWrite(**raw)
        except (ValueError, TypeError) as exc:
            raise ValueError(str(exc).splitlines()[0]) from exc
        names = (w.connector, w.object, w.record_id, w.field)
        if not all(isinstance(x, str) for x in names):
            raise ValueError("connector, object, record_id and field must be strings")
        if w.value is not None and (
            isinstance(w.value, bool) or not isinstance(w.value, int | float)
        ):
            raise ValueError(f"value must be a number or null, got {type(w.value).__name__}")
        if w.connector not in self.writers:
            raise ValueError(f"no connector named {w.connector!r} writes back here")
        return w

    async def _publish(self, writes: Iterable[FieldWrite]) -> None:
        sent = []
        for w in writes:
            body = json.dumps(
                {
                    "connector": w.connector,
                    "object": w.object,
                    "record_id": w.record_id,
                    "field": w.field,
                    "value": w.value,
                }
            )
            sent.append(await self.values.send(key=target_key(w), value=body.encode()))
        for future in sent:
            await future

    async def _flush(self, writer: Writer) -> None:
        """Write everything this batch planned, waiting out rate limits and backoff."""
        while True:
            await writer.flush(drain=True)
            nxt = await writer.outbox.next_due(writer.connector)
            if nxt is None:
                return
            await asyncio.sleep(
                max(0.05, min(nxt, max(writer.stats.paused_until, nxt)) - time.time())
            )

    async def _tick(self) -> None:
        """Values that time moves (a window rolled over, a rolling window slid), for the groups
        whose deltas partitions this worker holds: the table may still hold groups of partitions
        that moved away, and their values are the new owner's to write."""
        generation = self.app.consumer_generation_id
        if not self._settled(generation):
            return
        if generation != self._ticked_generation:  # groups moved: write all values they own
            self._ticked_generation = generation
            self.planner.forget_windows()
        topic = self.deltas.get_topic_name()
        mine = {tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic}
        partitions = list(range(self.deployment.runtime.faust.partitions))
        partitioner = DefaultPartitioner()  # how the producer places a group's deltas

        def owns(group: Group) -> bool:
            return partitioner(group_key(group).encode(), partitions, partitions) in mine

        async with self.aggregate_stage.lock:
            now = int(time.time() * 1000)
            writes = self.planner.due_by_time(self.aggregate_engine, now, owns)  # reads only
            self.aggregate_store.rollback()  # drop what the evaluation cached
            await self._publish(writes)


def _require_rocksdict() -> None:
    import importlib.util

    if importlib.util.find_spec("rocksdict") is None:
        raise ConfigError(
            [
                ConfigProblem(
                    "runtime.faust.store",
                    "store: rocksdb needs the rocksdict package (pip install 'crm-pulse[faust]'),"
                    " which is not installed; or use store: memory",
                )
            ]
        )


def _field(w: FieldWrite) -> tuple[str, str, str, str]:
    return (w.connector, w.object, w.record_id, w.field)


def _written_key(w: FieldWrite) -> tuple[str, int, str]:
    """The writer table's key for the last value written to ``w``'s field."""
    return ("w", 0, "/".join(_field(w)))


_UNKNOWN = "\x00unknown"  # a field's value while a write is under way: equals no value


@dataclass
class _Stage:
    """An agent's input order, the function that applies its messages, and its lock."""

    order: InputOrder
    apply: Callable[[Sequence[tuple[Any, list[Message]]]], Awaitable[None]]
    rollback: Callable[[], None]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def create_app(deployment: Deployment, **kwargs: Any) -> faust.App:
    return FaustPipeline(deployment, **kwargs).app
