"""A Faust table's state read from its changelog topic, without joining the workers' group.

A table ``T`` of app ``A`` is backed by the compacted topic ``A-T-changelog``: each record's key
is the table entry (a JSON string, the table's key serializer), its value the entry's bytes
(:func:`~crm_pulse.streams.embedded.state.dumps_state` of the entry's dict of state keys, see
:class:`~.stores.GroupedStore`), a tombstone (no value) when the entry was removed. The latest
record of each key is the entry's state: what a worker restores from on start. Read with a
plain consumer of its own (no group, no commits), as :class:`~.order.PartitionReader` reads a
hole, so a running deployment is read without disturbing it.

Entries whose name starts with ``@`` hold input positions, not state: left out.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

from ...metrics.state import Key
from ..embedded.state import loads_state

__all__ = ["changelog_topic", "read_changelog", "state_items"]


def changelog_topic(app_id: str, table: str) -> str:
    """Faust's name for a table's changelog topic."""
    return f"{app_id}-{table}-changelog"


async def read_changelog(
    servers: list[str], topic: str, partitions: int, timeout: float = 30.0
) -> dict[str, bytes]:
    """The latest value of every live entry of a changelog topic of ``partitions`` partitions
    (the table's), read up to the end offsets it had when the read began. Raises
    ``LookupError`` when the topic does not exist."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            raise LookupError(f"no topic {topic} on the broker (has a worker of this app run?)")
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        entries: dict[str, bytes | None] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            if loop.time() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout:.0f} s")
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, messages in batch.items():
                for m in messages:
                    if m.offset < ends[tp] and m.key is not None:
                        entries[_entry(m.key)] = m.value
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return {k: v for k, v in entries.items() if v is not None}
    finally:
        await consumer.stop()


def _entry(raw: bytes) -> str:
    """The table entry a changelog key names (JSON-serialised ``str`` keys)."""
    text = raw.decode("utf-8", errors="replace")
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def state_items(entries: dict[str, bytes]) -> Iterator[tuple[Key, Any]]:
    """The engine's state keys and values held by a table's entries (positions left out)."""
    for name, raw in entries.items():
        if name.startswith("@"):
            continue
        held = loads_state(raw)
        if isinstance(held, dict):
            yield from held.items()
