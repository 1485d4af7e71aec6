"""The Faust runtime: the same engine, partitioned across workers on Kafka.

::

    events (key: record)  ──agent records──▶  deltas (key: metric group)  ──agent aggregates──▶
    values (key: CRM field)  ──agent writer──▶  CRM sinks            poison ──▶ dead letters

* ``records`` keeps each record's state in the ``records`` table (phase 1 of the engine:
  :meth:`~crm_pulse.metrics.engine.Engine.record_deltas`) and publishes the contribution
  deltas, one message per metric group, tagged with the record and its version.
* ``aggregates`` applies deltas to the group's buckets in the ``aggregates`` table (phase 2),
  skipping a (group, record, version) it has already applied, asks the engine what changed,
  plans the field writes with the shared :class:`~crm_pulse.streams.writeback.Planner`, and
  publishes them.
* ``writer`` takes values in batches, coalesces them in the shared outbox and writes them with
  the shared :class:`~crm_pulse.streams.writeback.Writer` (vendor batch sizes, backoff,
  Retry-After, dead letters, no write of an unchanged value).

Each agent sends its output and waits for Kafka's acknowledgement *before* it changes its table,
so a worker killed at any point re-processes from the old state and repeats its output, which
the next stage recognises (versions) or which rewrites the same value. Agents run with
concurrency 1 (faust-streaming issue #606). A message that is not a valid canonical event goes
to the ``dead-letters`` topic with the reason, and the stream goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import faust
from pydantic import ValidationError

from ...config.models import Deployment
from ...connectors.protocols import FieldWrite
from ...metrics.engine import Delta, Engine
from ...metrics.events import Event
from ...metrics.measures import Group
from ..database import Database
from ..state import _dumps, _loads
from ..writeback import Backoff, Planner, SQLiteOutbox, Writer
from .stores import BufferedStore, TableStore

__all__ = ["FaustPipeline", "create_app", "event_key", "target_key"]

BATCH = 500
BATCH_WINDOW = 0.05  # seconds an agent waits to fill a batch

log = logging.getLogger("crm_pulse.faust")


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
    ) -> None:
        settings = deployment.runtime.faust
        self.deployment = deployment
        store = "rocksdb://" if settings.store == "rocksdb" else "memory://"
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
            stream_wait_empty=False,
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
        self.catalog = deployment.catalog()
        windows = deployment.window_specs()
        self.record_store = BufferedStore(TableStore(self.record_table))
        self.aggregate_store = BufferedStore(TableStore(self.aggregate_table))
        self.record_engine = Engine(self.catalog, self.record_store, windows)
        self.aggregate_engine = Engine(self.catalog, self.aggregate_store, windows)
        self.planner = Planner(deployment.writeback, self.catalog)
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
        self._aggregate_lock = asyncio.Lock()
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

    async def _dead_letter(self, reason: str, message: Any) -> Any:
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

    async def _records(self, stream: Any) -> None:
        """Phase 1 in batches: deltas out (acknowledged), then the record states."""
        async for batch in stream.take_events(BATCH, within=BATCH_WINDOW):
            sent = []
            for part in self._by_partition(batch):
                for event in part:
                    try:
                        canonical = Event.model_validate_json(event.value)
                    except (ValidationError, ValueError) as exc:
                        reason = f"not a canonical event: {str(exc).splitlines()[0]}"
                        sent.append(await self._dead_letter(reason, event.message))
                        continue
                    deltas = self.record_engine.record_deltas(canonical)
                    if not deltas:
                        continue
                    by_group: dict[Group, list[Delta]] = {}
                    for delta in deltas:
                        by_group.setdefault(Engine.delta_group(delta), []).append(delta)
                    record = "/".join(canonical.key)
                    for group, items in by_group.items():
                        body = _dumps(
                            {"record": record, "version": canonical.version, "deltas": items}
                        )
                        sent.append(await self.deltas.send(key=repr(group).encode(), value=body))
                self.record_store.stage(part[-1])
            for future in sent:
                await future  # acknowledged by Kafka before the state moves on
            self.record_store.commit()

    async def _aggregates(self, stream: Any) -> None:
        """Phase 2 in batches: values out (acknowledged), then the buckets."""
        async for batch in stream.take_events(BATCH, within=BATCH_WINDOW):
            async with self._aggregate_lock:  # the timer never sees half a batch
                await self._aggregate_batch(batch)

    async def _aggregate_batch(self, batch: Sequence[Any]) -> None:
        now = int(time.time() * 1000)
        writes: list[FieldWrite] = []
        for part in self._by_partition(batch):
            for event in part:
                payload = _loads(event.value)
                seen_key = ("s", event.key.decode(), payload["record"])
                last = self.aggregate_store.get(seen_key)
                if last is not None and payload["version"] <= last:
                    continue  # a repeat after a restart: already applied
                self.aggregate_engine.apply_deltas(payload["deltas"])
                self.aggregate_store.put(seen_key, payload["version"])
            # the groups of one partition: their reported values live in that partition
            writes.extend(self.planner.plan(self.aggregate_engine.changes(now), now))
            self.aggregate_store.stage(part[-1])
        await self._publish(writes)
        self.aggregate_store.commit()

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

    async def _writer(self, stream: Any) -> None:
        async for batch in stream.take(200, within=self.debounce):
            writes = [FieldWrite(**json.loads(v)) for v in batch]
            now = time.time()

            def plan(conn: Any, writes: list[FieldWrite] = writes, now: float = now) -> int:
                return SQLiteOutbox.put(conn, writes, now, 0.0)

            await self.outbox_db.run(self.outbox_db.transaction(plan))
            for writer in self.writers.values():
                await self._flush(writer)

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
        async with self._aggregate_lock:
            now = int(time.time() * 1000)
            writes = self.planner.due_by_time(self.aggregate_engine, now)  # reads only
            await self._publish(writes)


def create_app(deployment: Deployment, **kwargs: Any) -> faust.App:
    return FaustPipeline(deployment, **kwargs).app
