"""The Faust runtime: the same engine, partitioned across workers on Kafka.

::

    events (key: record)  ──agent records──▶  deltas (key: metric group)  ──agent aggregates──▶
    values (key: CRM field)  ──agent writer──▶  CRM sinks            poison ──▶ dead letters

This module builds the app, its topics and tables and wires the stages, one module each:

* :mod:`.records` runs phase 1 (:class:`~.phases.RecordPhase`): each record's state in the
  ``records`` table, contribution deltas out, one message per metric group and batch, each
  entry carrying its source position (events partition and offset).
* :mod:`.aggregates` runs phase 2 (:class:`~.phases.AggregatePhase`): the group's buckets in the
  ``aggregates`` table, each entry applied once; asks the engine what changed, plans the field
  writes with the shared :class:`~crm_pulse.streams.writeback.Planner`, publishes them.
* :mod:`.writer` records the values to write as pending in the changelogged ``writer`` table
  (all the agent waits for), and a task of the worker writes them with the shared
  :class:`~crm_pulse.streams.writeback.Writer` (vendor batch sizes, backoff, Retry-After, dead
  letters, no write of an unchanged value): a CRM outage holds no agent.
* :mod:`.timers`: values that time moves, and messages Faust left undelivered (holes behind
  its committed offsets, partitions it stopped delivering).
* :mod:`.watchdog`: a worker whose table recovery stopped moving starts again.

Nothing lost, nothing counted twice, with a worker killed at any moment:

1. each agent sends its output and waits for Kafka's acknowledgement *before* its state moves;
2. its state is committed before Faust may commit the input offsets, and the commit waits for
   the changelog's acknowledgement; the input positions are appended behind the state, in the
   same changelog partition, and never become durable before it (:mod:`.stores`,
   :mod:`.bulk`);
3. it keeps its own position in each input partition, so a message Faust skipped is read back
   and a message delivered twice is dropped (:mod:`.order`);
4. re-processing after a crash sends the same positioned entries again, which the next stage
   recognises (:mod:`.phases`), or rewrites the same field value.

Each stage is one task taking one batch at a time (faust-streaming issue #606: no concurrency),
fed by :mod:`.batches`: the messages Faust's consumer fetched, a fetch at a time, instead of
Faust's per-message path through agents and streams. A message that cannot be applied goes to the
``dead-letters`` topic with the reason, and the stream goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import faust

from ...config.models import Deployment
from ...errors import ConfigError, ConfigProblem
from ...metrics.engine import Engine
from ...metrics.events import Event
from ..embedded import Database, build_connectors
from ..writeback import Backoff, Planner, Writer
from . import batches
from .aggregates import AggregatesStage, target_key
from .bulk import BulkChangelog, BulkTopic, KafkaOutput
from .deadletters import DeadLetterLog, dead_letter_topic
from .order import Anchor, InputOrder, Message, PartitionReader
from .phases import AggregatePhase, RecordPhase
from .records import RecordsStage
from .stage import Stage
from .stores import GroupedStore, by_group, by_record
from .timers import Timers
from .watchdog import RecoveryWatchdog
from .writer import Handouts, RecordingOutbox, WriterStage

__all__ = ["FaustPipeline", "create_app", "event_key", "kafka_servers", "target_key"]

BATCH = 2000
WRITER_BATCH = 200
HOLE_CHECK = 2.0  # seconds between checks for messages Faust committed without delivering
RECOVERY_CHECK = 5.0  # seconds between looks at a table recovery under way

log = logging.getLogger("crm_pulse.faust")


def kafka_servers(broker: str) -> list[str]:
    """``kafka://host:port;kafka://host2:port`` -> ``["host:port", "host2:port"]``."""
    return [u.split("://", 1)[-1] for u in broker.split(";") if u]


def event_key(event: Event) -> bytes:
    return "/".join(event.key).encode()


class FaustPipeline:
    """The app, its topics, tables and agents for one deployment."""

    def __init__(
        self,
        deployment: Deployment,
        *,
        sinks: dict[str, Any] | None = None,
        broker: str | None = None,
        data_dir: Path | None = None,
        instance_id: str | None = None,
    ) -> None:
        settings = deployment.runtime.faust
        self.deployment = deployment
        if settings.store == "rocksdb":
            _require_rocksdict()
        store = "rocksdb://" if settings.store == "rocksdb" else "memory://"
        options: dict[str, Any] = {} if data_dir is None else {"datadir": str(data_dir)}
        if instance_id is not None and settings.static_membership:  # KIP-345, see .datadir
            options["consumer_group_instance_id"] = instance_id
        session = settings.session_timeout
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
            broker_session_timeout=session,
            broker_heartbeat_interval=min(1.0, session / 5),
            broker_request_timeout=max(90.0, session + 30.0),  # Faust: never below the session
            broker_commit_every=100,
            broker_commit_interval=1.0,
            stream_wait_empty=True,  # a rebalance waits for in-flight batches to commit
            **options,
        )
        self._inbox = batches.install(self.app)  # the hot topics a fetch at a time (.batches)
        self.events = self._topic("events", settings.partitions)
        self.deltas = self._topic("deltas", settings.partitions)
        self.values = self._topic("values", settings.partitions)
        self.dead = self._topic("dead-letters", 1)
        self.dead_lettered = 0
        """Poison messages moved to the dead letters by this worker (quarantined, counted)."""
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
        servers = kafka_servers(str(self.app.conf.broker[0]))
        # each agent's output and changelog records in bulk (see .bulk), one producer per
        # agent: aiokafka keeps one request in flight per broker connection, and one shared
        # producer queued each agent's sends behind the others' (p50 latency +60 ms)
        self.outputs = {name: KafkaOutput(servers) for name in ("records", "aggregates", "writer")}
        out = self.outputs
        self.record_store = GroupedStore(
            self.record_table, by_record, BulkChangelog(self.record_table, out["records"])
        )
        self.aggregate_store = GroupedStore(
            self.aggregate_table, by_group, BulkChangelog(self.aggregate_table, out["aggregates"])
        )
        self.writer_store = GroupedStore(
            self.writer_table, by_group, BulkChangelog(self.writer_table, out["writer"])
        )
        # by time: a tick evaluates the groups whose value can have moved (the aggregates stage
        # tells it which groups each batch touched, see .timers)
        self.planner = Planner(deployment.writeback, self.catalog, by_time=True)
        connectors = build_connectors(deployment)
        self.pulled = sorted(n for n, c in connectors.items() if c.source is not None)
        """Pulling sources: a deltas partition writes once each finished its first read."""
        self.records = RecordsStage(
            RecordPhase(Engine(self.catalog, self.record_store, windows), self.record_store),
            self.record_store,
            BulkTopic(out["records"], self.deltas.get_topic_name()),
            self._dead_letter,
            settings.partitions,
        )
        self.aggregates = AggregatesStage(
            AggregatePhase(
                # the groups with data kept up to date (a rollover reads those of the windows it
                # crosses, not every group); rebuilt when the table changes under the engine: a
                # rolled back batch, a new generation (.timers), a partition that becomes writable
                Engine(self.catalog, self.aggregate_store, windows, track_groups=True),
                self.aggregate_store,
                self.planner.wanted,
            ),
            self.planner,
            BulkTopic(out["aggregates"], self.values.get_topic_name()),
            self._dead_letter,
            sweeper=Planner(deployment.writeback, self.catalog),
            pulled=self.pulled,
            partitions=settings.partitions,
        )
        if sinks is None:
            sinks = {n: c.sink for n, c in connectors.items() if c.sink is not None}
        self.sinks = sinks
        self.outbox_db = Database(":memory:")  # the writers' working queue (see .writer)
        retry = deployment.runtime.retry
        handouts = Handouts()
        writers = {
            name: Writer(
                name,
                sink,
                RecordingOutbox(self.outbox_db, handouts),
                Backoff(retry.initial, retry.max, retry.attempts),
            )
            for name, sink in self.sinks.items()
        }
        self.writer = WriterStage(
            self.writer_store,
            writers,
            self.outbox_db,
            self._dead_letter,
            topic=self.values.get_topic_name(),
            handouts=handouts,
            dead_letters=DeadLetterLog(out["writer"], dead_letter_topic(settings.app_id)),
        )
        self.debounce = max(0.05, deployment.runtime.debounce)
        reader = PartitionReader(servers)
        self.record_stage = Stage(
            InputOrder(self.events.get_topic_name(), self.record_store, reader),
            self.records.apply,
            self.records.rollback,
        )
        self.aggregate_stage = Stage(
            InputOrder(self.deltas.get_topic_name(), self.aggregate_store, reader),
            self.aggregates.apply,
            self.aggregates.rollback,
        )
        self.writer_stage = Stage(
            InputOrder(self.values.get_topic_name(), self.writer_store, reader),
            self.writer.apply,
            self.writer.rollback,
            self.writer.lock,  # the writing task changes the table under the agent's lock
        )
        self.timers = Timers(self)
        self.watchdog = RecoveryWatchdog(self.app)
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

    # ------------------------------------------------------------ agents
    def _register(self) -> None:
        app = self.app
        for topic, stage, limit, window in (
            (self.events, self.record_stage, BATCH, 0.0),
            (self.deltas, self.aggregate_stage, BATCH, 0.0),
            (self.values, self.writer_stage, WRITER_BATCH, self.debounce),
        ):
            app.topics.add(topic)  # subscribed; its messages go to the inbox, not to an agent
            inbox = self._inbox(topic.get_topic_name())
            app.task(self._agent(stage, inbox, limit, window))
        app.timer(interval=max(1.0, self.deployment.runtime.tick), name="time")(self.timers.tick)
        app.timer(interval=HOLE_CHECK, name="holes")(self.timers.holes)
        app.timer(interval=RECOVERY_CHECK, name="recovery-watchdog")(self.watchdog.check)

        async def write_pending() -> None:
            await self.writer.run(self._owned_values)

        app.task(write_pending)
        topic = self.events.get_topic_name()

        async def assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            tps = args[0] if args else kwargs.get("assigned", ())
            mine = sorted(tp.partition for tp in tps if tp.topic == topic)
            log.info(
                "this worker now takes partitions %s of %s (group instance id %s)",
                mine,
                topic,
                app.conf.consumer_group_instance_id,
            )

        app.on_partitions_assigned.connect(assigned)

        async def stopping(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            await self.stop_outputs()
            await self.timers.close()

        app.on_before_shutdown.connect(stopping)

    async def stop_outputs(self) -> None:
        """Stop the producers of our own (each agent's output and changelog records)."""
        for output in self.outputs.values():
            await output.stop()

    def _owned_values(self) -> tuple[int, frozenset[int]] | None:
        """(consumer generation, values partitions held) once settled; None before."""
        generation = self.app.consumer_generation_id
        if not self.timers.settled(generation):
            return None
        topic = self.values.get_topic_name()
        mine = frozenset(tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic)
        return generation, mine

    async def _dead_letter(self, reason: str, message: Message) -> Any:
        payload = {
            "reason": reason,
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "value": (message.value or b"").decode("utf-8", "replace")[:10_000],
        }
        self.dead_lettered += 1
        future = await self.dead.send(key=message.key, value=json.dumps(payload).encode())
        log.warning(
            "message moved to the dead letters: %s", reason, extra={"offset": message.offset}
        )
        return future

    def _agent(
        self, stage: Stage, inbox: batches.Inbox, limit: int, window: float
    ) -> Callable[[], Awaitable[None]]:
        """An agent: takes what Faust's consumer fetched of its topic (:mod:`.batches`), in
        batches of at most ``limit`` messages (waiting up to ``window`` seconds to fill one),
        and applies them through ``stage``; acknowledges them to Faust once committed."""

        async def agent() -> None:
            while True:
                fetched = await inbox.take(limit, window)
                for start in range(0, len(fetched), limit):
                    batch = fetched[start : start + limit]
                    try:
                        async with stage.lock:  # the timers never see half a batch
                            applied = await self._ordered(stage, batch)
                    except Exception:
                        # nothing of it is committed; its messages are read back from Kafka as
                        # a hole when the next ones arrive (or by the stall check)
                        log.exception("%s: a batch failed; it will be read again", inbox.topic)
                        # unacknowledged, its messages must not stay referenced: Faust's set of
                        # in-flight messages is weak and a rebalance waits until it empties
                        fetched = batch = []
                        await asyncio.sleep(1.0)
                        break
                    if not applied:
                        return  # stopping
                    batches.acknowledge(self.app.consumer, batch)

        agent.__name__ = agent.__qualname__ = f"agent {inbox.topic}"
        return agent

    async def _ordered(self, stage: Stage, batch: Sequence[Any]) -> bool:
        """One fetched batch (Faust's messages): per partition, the messages still to apply,
        then the stage; False (nothing done) once the worker is stopping.

        Not once the worker is stopping: Faust closes the tables before the tasks end, and a
        batch applied then would read empty tables (every position 0, every group without its
        buckets) and commit entries built on them. The batch is left to the next start (its
        messages are above the committed positions)."""
        if self.app.should_stop:
            return False
        try:
            parts = []
            by_partition: dict[int, list[Any]] = {}
            for message in batch:
                by_partition.setdefault(message.partition, []).append(message)
            for partition, fetched in by_partition.items():
                anchor = Anchor(stage.order.topic, partition)
                messages = await stage.order.fetched(fetched, anchor)
                if messages:
                    parts.append((anchor, messages))
            if parts:
                await stage.apply(parts)
        except BaseException:
            stage.rollback()  # nothing half-done is committed later: positions included
            stage.order.take_repaired()
            raise
        self.acknowledge(stage.order.take_repaired())  # committed: Faust may move past them
        return True

    def acknowledge(self, messages: Sequence[Message]) -> None:
        """Acknowledge messages read back from Kafka (and now committed) to Faust's consumer, so
        that its committed offset moves past the hole they filled (see
        :meth:`.InputOrder.take_repaired`)."""
        if not messages:
            return
        from faust.types import TP
        from faust.types import Message as FaustMessage

        consumer = self.app.consumer
        try:
            for m in messages:
                tp = TP(m.topic, m.partition)
                consumer.ack(
                    FaustMessage(
                        m.topic, m.partition, m.offset, 0.0, 0, [], m.key, m.value, None, tp=tp
                    )
                )
        except Exception:  # the batch is committed: a failed acknowledgement only delays Faust's
            log.warning("could not acknowledge messages read back to Faust", exc_info=True)


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


def create_app(deployment: Deployment, **kwargs: Any) -> faust.App:
    return FaustPipeline(deployment, **kwargs).app
