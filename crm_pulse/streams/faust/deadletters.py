"""The Faust writer's dead letters: writes the CRM refused for good, kept in Kafka.

A compacted topic, ``<app>-write-dead-letters`` (one partition), holds one record per field
whose last write was refused for good, keyed by the field (the values topic's key: connector,
object, record, field), with the value, the vendor's reason, the attempts and the time. The
writing task appends it and waits for Kafka's acknowledgement *before* it records the outcome in
the ``writer`` table (:meth:`.WriterStage.record`), so a worker killed in between writes the
value again (and is refused again: the same key, the same letter). The table marks the field's
last written value as refused; when a later value for that field is written, a tombstone
removes its letter, again before the table moves. Being a topic, the letters survive a worker's
restart and a rebalance, and every process can read them:

* ``/status``, the status page and ``/metrics`` of the edge (``crm-pulse run``) show the count
  and the newest letters (:class:`DeadLetterView`);
* ``crm-pulse deadletters list|retry|drop`` (:func:`run_command`): ``retry`` publishes the value
  to the values topic again (the writer agent takes it like any other value), ``drop`` appends
  the tombstone. A letter's id is its offset in the topic.

Transient failures that used up their attempts are not letters here: their values stay pending
in the ``writer`` table and are written when the CRM answers again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from ...connectors.protocols import FieldWrite

__all__ = [
    "DeadLetterLog",
    "DeadLetterView",
    "Letter",
    "dead_letter_topic",
    "read_dead_letters",
    "run_command",
]

REFRESH = 2.0
"""Seconds a :class:`DeadLetterView` answers from what it read before looking at Kafka again."""


def dead_letter_topic(app_id: str) -> str:
    return f"{app_id}-write-dead-letters"


def field_key(w: FieldWrite) -> bytes:
    """A letter's key: the field (the values topic's key of the same field)."""
    return "/".join((w.connector, w.object, w.record_id, w.field)).encode()


@dataclass(frozen=True)
class Letter:
    """One write refused for good: the field, its value, why, after how many attempts, when."""

    write: FieldWrite
    reason: str
    attempts: int
    failed_ms: int

    def to_json(self) -> bytes:
        w = self.write
        return json.dumps(
            {
                "connector": w.connector,
                "object": w.object,
                "record_id": w.record_id,
                "field": w.field,
                "value": w.value,
                "reason": self.reason,
                "attempts": self.attempts,
                "failed_ms": self.failed_ms,
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Letter:
        d = json.loads(raw)
        write = FieldWrite(d["connector"], d["object"], d["record_id"], d["field"], d["value"])
        return cls(write, str(d["reason"]), int(d["attempts"]), int(d["failed_ms"]))


class Output(Protocol):
    async def append(
        self, topic: str, partition: int, records: Sequence[tuple[bytes, bytes | None]]
    ) -> int:
        """Append and wait for Kafka's acknowledgement (see :class:`.bulk.KafkaOutput`)."""


class DeadLetterLog:
    """The writing task's side: letters and tombstones appended, acknowledged, in order."""

    def __init__(self, output: Output, topic: str) -> None:
        self.output = output
        self.topic = topic

    async def put(self, letters: Sequence[Letter], cleared: Sequence[FieldWrite]) -> None:
        """Append ``letters`` and a tombstone per field of ``cleared`` (written since)."""
        records: list[tuple[bytes, bytes | None]] = [(field_key(w), None) for w in cleared]
        records += [(field_key(letter.write), letter.to_json()) for letter in letters]
        if records:
            await self.output.append(self.topic, 0, records)


def _row(offset: int, letter: Letter) -> dict[str, object]:
    """A letter as ``crm-pulse deadletters list`` and ``/status`` show one (the embedded
    runtime's shape: :meth:`~crm_pulse.streams.writeback.SQLiteOutbox.dead_letters`)."""
    w = letter.write
    return {
        "id": offset,
        "connector": w.connector,
        "object": w.object,
        "record_id": w.record_id,
        "field": w.field,
        "value": json.dumps(w.value),
        "reason": letter.reason,
        "attempts": letter.attempts,
        "failed_ms": letter.failed_ms,
    }


class DeadLetterView:
    """The letters as they are now, followed from the topic (the edge's ``/status``)."""

    def __init__(self, servers: list[str], topic: str) -> None:
        self.servers = servers
        self.topic = topic
        self.letters: dict[bytes, tuple[int, Letter]] = {}
        self._consumer: Any = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()
        self.error = ""

    async def refresh(self) -> None:
        """Read what was appended since the last look (at most every :data:`REFRESH` s)."""
        async with self._lock:
            if time.monotonic() - self._read_at < REFRESH:
                return
            try:
                await self.read_new()
                self.error = ""
            except Exception as exc:  # Kafka unreachable: the status says so, and goes on
                self.error = f"dead letters unreadable: {type(exc).__name__}: {exc}"[:300]
            self._read_at = time.monotonic()

    async def read_new(self) -> None:
        """Read up to the topic's end offset now (no cache)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        tp = TopicPartition(self.topic, 0)
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.servers, group_id=None, enable_auto_commit=False
            )
            await consumer.start()
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            self._consumer = consumer
        consumer = self._consumer
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
            for message in batch.get(tp, []):
                if message.value is None:
                    self.letters.pop(message.key, None)
                else:
                    self.letters[message.key] = (message.offset, Letter.from_json(message.value))

    def rows(self, limit: int) -> list[dict[str, object]]:
        """The newest ``limit`` letters, newest first."""
        newest = sorted(self.letters.values(), key=lambda x: x[0], reverse=True)[:limit]
        return [_row(offset, letter) for offset, letter in newest]

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()


async def read_dead_letters(servers: list[str], topic: str) -> list[dict[str, object]]:
    """Every letter in the topic now, oldest first (``crm-pulse deadletters list``)."""
    view = DeadLetterView(servers, topic)
    try:
        await view.read_new()
    finally:
        await view.close()
    return view.rows(len(view.letters))[::-1]


def run_command(
    deployment: Any, action: str, ids: Sequence[int], *, all_letters: bool, out: TextIO
) -> int:
    """``crm-pulse deadletters`` on a Faust deployment; returns the exit code."""
    return asyncio.run(_command(deployment, action, ids, all_letters, out))


async def _command(
    deployment: Any, action: str, ids: Sequence[int], all_letters: bool, out: TextIO
) -> int:
    from .app import kafka_servers

    settings = deployment.runtime.faust
    servers = kafka_servers(settings.broker)
    topic = dead_letter_topic(settings.app_id)
    letters = await read_dead_letters(servers, topic)
    if action == "list":
        if not letters:
            out.write("no dead letters\n")
        for d in letters:
            out.write(
                f"{d['id']:>6}  {d['connector']:<12} {d['object']} {d['record_id']} "
                f"{d['field']} = {d['value']}  ({d['attempts']} attempts) {str(d['reason'])[:80]}\n"
            )
        out.write(f"{len(letters)} dead letter(s)\n")
        return 0
    if not ids and not all_letters:
        out.write(f"deadletters {action}: name dead letter ids, or --all\n")
        return 2
    chosen = [d for d in letters if all_letters or d["id"] in set(ids)]
    writes = [
        FieldWrite(
            str(d["connector"]),
            str(d["object"]),
            str(d["record_id"]),
            str(d["field"]),
            json.loads(str(d["value"])),
        )
        for d in chosen
    ]
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    try:
        sent = []
        for w in writes:
            if action == "drop":
                sent.append(await producer.send(topic, None, key=field_key(w), partition=0))
            else:  # the writer agent takes it like any value; a success removes the letter
                body = json.dumps(
                    {
                        "connector": w.connector,
                        "object": w.object,
                        "record_id": w.record_id,
                        "field": w.field,
                        "value": w.value,
                    }
                ).encode()
                sent.append(
                    await producer.send(f"{settings.app_id}-values", body, key=field_key(w))
                )
        for future in sent:
            await future
    finally:
        await producer.stop()
    if action == "drop":
        out.write(f"dropped {len(writes)} dead letter(s)\n")
    else:
        out.write(f"{len(writes)} dead letter(s) sent to the writers again\n")
    return 0
