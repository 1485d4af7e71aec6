"""Table changelog records, written in bulk by a Kafka producer of our own.

A batch's table entries (:class:`~.stores.GroupedStore`) are appended to the table's changelog
as a few Kafka record batches per partition, with one acknowledgement to wait for per batch,
instead of one message per entry through Faust's ``Table.send_changelog`` (its send path cost
about 100 µs of Python per record, and the records agent writes one entry per record a batch
touched: most of a worker's time).

Ordering and atomicity (what :meth:`~.stores.GroupedStore.commit` relies on):

* the records of one partition are appended in the order given (one producer; aiokafka sends
  one batch per partition at a time);
* a Kafka record batch is appended to the log whole or not at all; a partition's records that
  fit in one batch (up to :data:`BATCH_BYTES`) are one batch, so a batch's entries and the
  input position behind them become durable together;
* when they need several batches, the last one (which holds the position) is sent only once
  Kafka acknowledged the others: **the last record of a partition is never durable before the
  records before it**.

:class:`FaustChangelog` is the same contract over Faust's own per-record path (used where no
producer of ours runs, e.g. the tests' simulated Kafka).

:class:`BulkTopic` sends an agent's output (delta messages, field values) the same way: one
record batch per partition and one acknowledgement each, instead of one future per message
through Faust's producer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .stage import Outgoing

__all__ = [
    "BATCH_BYTES",
    "BulkChangelog",
    "BulkTopic",
    "Changelog",
    "FaustChangelog",
    "KafkaOutput",
]

BATCH_BYTES = 900_000
"""Bytes per record batch at most: under the broker's default ``message.max.bytes`` (1 MB)."""

Records = Mapping[int, Sequence[tuple[str, bytes | None]]]
"""Per changelog partition, (table key, value) in order; a value of None deletes the key."""


class Changelog(Protocol):
    async def write(self, records: Records) -> None:
        """Append and wait until Kafka acknowledged every record; per partition in order, the
        last record never durable before the others."""


class KafkaOutput:
    """An aiokafka producer of the pipeline's own (public aiokafka API only), started on first
    use in the worker's event loop and stopped with the app."""

    def __init__(self, servers: list[str]) -> None:
        self.servers = servers
        self._producer: Any = None
        self._starting = asyncio.Lock()
        self._partitions: dict[str, list[int]] = {}

    async def producer(self) -> Any:
        if self._producer is None:
            async with self._starting:
                if self._producer is None:
                    from aiokafka import AIOKafkaProducer

                    producer = AIOKafkaProducer(
                        bootstrap_servers=self.servers,
                        acks="all",
                        max_batch_size=BATCH_BYTES,
                        max_request_size=BATCH_BYTES + 100_000,
                        linger_ms=0,
                    )
                    await producer.start()
                    self._producer = producer
        return self._producer

    async def append(
        self, topic: str, partition: int, records: Sequence[tuple[bytes | None, bytes | None]]
    ) -> int:
        """Append ``records`` (key, value) to one partition; returns the offset of the last.
        Batches before the last are acknowledged before the last is sent."""
        producer = await self.producer()
        batches = []
        batch = producer.create_batch()
        count = 0
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                batch.close()
                batches.append((batch, count))
                batch = producer.create_batch()
                count = 0
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a changelog record of {topic} is too large for Kafka")
            count += 1
        batch.close()
        sent = [await producer.send_batch(b, topic, partition=partition) for b, _ in batches]
        if sent:
            await asyncio.gather(*sent)  # the last batch is durable only after these
        done = await (await producer.send_batch(batch, topic, partition=partition))
        return int(done.offset) + count - 1

    async def partitions(self, topic: str) -> list[int]:
        """The topic's partitions, as the producer's metadata knows them."""
        found = self._partitions.get(topic)
        if found is None:
            producer = await self.producer()
            found = self._partitions[topic] = sorted(await producer.partitions_for(topic))
        return found

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()


class BulkTopic:
    """An agent's output topic written through :class:`KafkaOutput`: a batch's messages as one
    or a few record batches per partition, in order, one acknowledgement each, instead of one
    future per message through Faust's producer. Messages with no partition go where Faust's
    producer (aiokafka's default partitioner) would put them, so a key's messages stay in one
    partition whichever path sent them."""

    def __init__(self, output: KafkaOutput, topic: str) -> None:
        from aiokafka.partitioner import DefaultPartitioner

        self.output = output
        self.topic = topic
        self._partitioner = DefaultPartitioner()

    async def send_all(self, messages: Sequence[Outgoing]) -> None:
        """Send ``messages`` and return once Kafka acknowledged every one."""
        if not messages:
            return
        every = await self.output.partitions(self.topic)
        parts: dict[int, list[tuple[bytes | None, bytes | None]]] = {}
        for key, value, partition in messages:
            if partition is None:
                partition = self._partitioner(key, every, every)
            parts.setdefault(partition, []).append((key, value))
        await asyncio.gather(
            *(self.output.append(self.topic, p, records) for p, records in parts.items())
        )


class BulkChangelog:
    """A Faust table's changelog written through :class:`KafkaOutput`. Keys are encoded as Faust
    encodes a ``str`` table key (JSON), so its recovery and standby replicas read them as their
    own; the RocksDB store is told the last offset written (as Faust's send path does), so a
    restarted worker replays only the changelog's tail."""

    def __init__(self, table: Any, output: KafkaOutput) -> None:
        self.table = table
        self.output = output
        self.topic: str = table.changelog_topic.get_topic_name()

    async def write(self, records: Records) -> None:
        from faust.types import TP

        parts = [p for p, rs in records.items() if rs]
        offsets = await asyncio.gather(
            *(
                self.output.append(
                    self.topic, p, [(json.dumps(k).encode(), v) for k, v in records[p]]
                )
                for p in parts
            )
        )
        for p, offset in zip(parts, offsets, strict=True):
            self.table.data.set_persisted_offset(TP(self.topic, p), offset)


class FaustChangelog:
    """The same contract over Faust's ``Table.send_changelog`` (a future per record)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    async def write(self, records: Records) -> None:
        send = self.table.send_changelog
        first = [
            send(p, k, v) if v is not None else send(p, k, None, value_serializer="raw")
            for p, rs in records.items()
            for k, v in rs[:-1]
        ]
        if first:
            await asyncio.gather(*first)
        last = [
            send(p, k, v) if v is not None else send(p, k, None, value_serializer="raw")
            for p, rs in records.items()
            if rs
            for k, v in rs[-1:]
        ]
        if last:
            await asyncio.gather(*last)
