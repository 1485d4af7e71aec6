"""Each input message exactly once, in offset order: positions kept in our own state.

Faust's committed offsets are not a safe record of what an agent has applied. Around a
rebalance, faust-streaming 0.15.3 was seen delivering a newly assigned partition with holes (a
run of about ten messages never reached the agent, one message came twice) and committing
offsets past the holes; its stream loop acknowledges the messages it skips while flow control is
suspended. A worker that lost messages that way counts too little, for ever.

So every agent keeps, per input partition, the next offset it expects, in its own table and
committed after the state it guards (:meth:`~.stores.GroupedStore.commit`). :class:`InputOrder`
compares each delivered message with it: an older one was applied already and is dropped, a
newer one reveals a hole, which is read straight from Kafka (:class:`PartitionReader`) and
processed first. :meth:`InputOrder.holes_behind` finds holes at the end of a partition, where no
later message would reveal them, by comparing the position with the offset Faust committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .stores import GroupedStore

__all__ = ["Anchor", "InputOrder", "Message", "PartitionReader"]

log = logging.getLogger("crm_pulse.faust")


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class _AnchorMessage:
    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition


class Anchor:
    """Stands for a Faust event of a partition when there is none at hand (table writes are
    placed by the partition of the current event)."""

    def __init__(self, topic: str, partition: int) -> None:
        self.message = _AnchorMessage(topic, partition)


class PartitionReader:
    """Reads a range of one partition with a consumer of its own (no group, no commits)."""

    def __init__(self, servers: list[str], timeout: float = 30.0) -> None:
        self.servers = servers
        self.timeout = timeout

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[Message]:
        """Messages with ``start <= offset < end`` (fewer when the log has no such offsets)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, start)
            out: list[Message] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout
            while await consumer.position(tp) < end:
                if loop.time() > deadline:
                    raise TimeoutError(
                        f"could not read {topic}[{partition}] offsets {start}..{end - 1}"
                    )
                batch = await consumer.getmany(tp, timeout_ms=500)
                for m in batch.get(tp, []):
                    if start <= m.offset < end:
                        out.append(Message(topic, partition, m.offset, m.key, m.value))
            return out
        finally:
            await consumer.stop()


class InputOrder:
    """The messages of one input topic that an agent must still apply, in order."""

    def __init__(self, topic: str, store: GroupedStore, reader: PartitionReader) -> None:
        self.topic = topic
        self.store = store
        self.reader = reader
        self.holes = 0  # messages read back because Faust did not deliver them
        self.repaired: list[Message] = []  # read back in the batch under way (see take_repaired)

    async def messages(self, events: Sequence[Any]) -> list[Message]:
        """The delivered events of one partition, as the messages still to apply."""
        return await self.fetched([e.message for e in events], events[-1])

    async def fetched(self, delivered: Sequence[Any], anchor: Any) -> list[Message]:
        """The delivered messages of one partition (in offset order; anything with ``topic``,
        ``partition``, ``offset``, ``key`` and ``value``), as the messages still to apply;
        ``anchor`` places the position's table write (an event of the partition or an
        :class:`Anchor`)."""
        partition = delivered[0].partition
        expected = self.store.position(partition) or 0
        out: list[Message] = []
        for m in delivered:
            if m.offset < expected:
                continue  # applied already (delivered again)
            if m.offset > expected:
                found = await self._hole(partition, expected, m.offset)
                self.repaired.extend(found)
                out.extend(found)
            out.append(Message(m.topic, partition, m.offset, m.key, m.value))
            expected = m.offset + 1
        if out:
            self.store.set_position(partition, out[-1].offset + 1, anchor)
        return out

    def take_repaired(self) -> list[Message]:
        """The messages read back since the last call, to acknowledge to Faust once the batch
        holding them is committed: Faust never delivered them, so it never saw them acknowledged,
        and it commits a partition's offset only up to its first unacknowledged message. Without
        this the committed offset stays at the hole's first offset for ever (lag never 0, and a
        restart re-reads the whole tail)."""
        out, self.repaired = self.repaired, []
        return out

    async def holes_behind(self, partition: int, committed: int | None) -> list[Message] | None:
        """Messages before ``committed`` (Faust's committed offset) that were never applied;
        None when there is no such range. The position moves to ``committed`` (the whole range
        was read, even where it holds fewer messages)."""
        expected = self.store.position(partition) or 0
        if committed is None or committed <= expected:
            return None
        out = await self._hole(partition, expected, committed)
        self.store.set_position(partition, committed, Anchor(self.topic, partition))
        return out

    async def _hole(self, partition: int, start: int, end: int) -> list[Message]:
        found = await self.reader.read(self.topic, partition, start, end)
        self.holes += len(found)
        log.warning(
            "%s[%d]: offsets %d..%d were not delivered; read %d of them from Kafka",
            self.topic,
            partition,
            start,
            end - 1,
            len(found),
        )
        return found
