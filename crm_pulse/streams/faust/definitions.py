"""The Faust tables follow the definitions: a worker refuses to start on tables built under
other ones.

The records and aggregates tables are only meaningful under the definitions they were built
with (:mod:`crm_pulse.metrics.fingerprint`): a worker that applied new definitions to them
would crash on records stored before the change or count wrongly. Unlike the embedded runtime,
a worker cannot rebuild them in place: the events topic may no longer hold every event
(retention), and the other workers still run the old definitions.

So the fingerprint of the definitions the tables were built with is kept in a compacted topic
``<app_id>-definitions`` (one record, keyed by the app id). At start, before it joins the
group, a worker compares it with its deployment's:

* the same: it starts;
* none recorded and the tables are empty (a new app): it records its own and starts;
* different, or none recorded on tables that hold state (written by an older crm-pulse): it
  exits with :class:`DefinitionsChanged`, naming what changed and how to rebuild -- a new
  ``app_id``, into which the edge forwards its whole event log (see docs/faust.md).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ...errors import FatalError
from ...metrics.fingerprint import DefinitionChanges, changes, fingerprint

__all__ = [
    "DefinitionsChanged",
    "check_definitions",
    "definitions_topic",
    "forward_to",
    "tables_differ",
]

_WAIT_MS = 10_000

log = logging.getLogger("crm_pulse.faust")


class DefinitionsChanged(FatalError):
    """The tables were built under other definitions; the worker does not start."""

    def __init__(self, app_id: str, why: DefinitionChanges) -> None:
        super().__init__(
            f"metric definitions changed since the Faust tables of app {app_id!r} were built "
            f"({why}). The worker does not start: its tables would count wrongly under the new "
            "definitions. To rebuild them: stop every worker and the edge, set "
            f"runtime.faust.app_id to a new name (e.g. {_next_id(app_id)!r}) and start them "
            "again; the edge (crm-pulse run) forwards its whole event log to the new app's "
            "topics, the new workers build their tables from it and write whole values once it "
            "is all applied. Then delete the old app's topics. To keep running the old tables, "
            "restore the former definitions."
        )


def _next_id(app_id: str) -> str:
    head, _, tail = app_id.rpartition("-v")
    if head and tail.isdigit():
        return f"{head}-v{int(tail) + 1}"
    return f"{app_id}-v2"


def definitions_topic(app_id: str) -> str:
    return f"{app_id}-definitions"


async def _ensure_topic(servers: list[str], topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "compact"})]
        )
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


async def _read(servers: list[str], topic: str, key: bytes) -> dict[str, Any] | None:
    """The last fingerprint recorded under ``key`` (None: none)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None, enable_auto_commit=False)
    await consumer.start()
    found: dict[str, Any] | None = None
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            batches = await consumer.getmany(tp, timeout_ms=_WAIT_MS)
            if not batches:
                raise FatalError(f"could not read Kafka topic {topic} (no answer in 10 s)")
            for message in batches.get(tp, []):
                if message.key == key:  # the last one counts; a tombstone removes it
                    value = json.loads(message.value) if message.value else None
                    found = value if isinstance(value, dict) else None
    finally:
        await consumer.stop()
    return found


async def _holds_state(servers: list[str], topics: list[str], partitions: int) -> bool:
    """Whether any of these changelog topics (of ``partitions`` each) ever received a record."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for topic in topics for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
        return any(offset > 0 for offset in ends.values())
    finally:
        await consumer.stop()


async def _record(servers: list[str], topic: str, key: bytes, fp: dict[str, Any]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, json.dumps(fp, sort_keys=True).encode(), key=key)
    finally:
        await producer.stop()


async def check_definitions(pipeline: Any) -> bool:
    """Before a worker starts (``pipeline``: its :class:`~.app.FaustPipeline`): True if it
    recorded the definitions of new tables; :class:`DefinitionsChanged` if the tables were
    built under other definitions."""
    from .app import kafka_servers

    deployment = pipeline.deployment
    app_id = deployment.runtime.faust.app_id
    servers = kafka_servers(str(pipeline.app.conf.broker[0]))
    topic = definitions_topic(app_id)
    key = app_id.encode()
    current = fingerprint(pipeline.catalog, deployment.window_specs())
    await _ensure_topic(servers, topic)
    stored = await _read(servers, topic, key)
    if stored == current:
        return False
    changelogs = [
        table.changelog_topic.get_topic_name()
        for table in (pipeline.record_table, pipeline.aggregate_table)
    ]
    partitions = deployment.runtime.faust.partitions
    if stored is None and not await _holds_state(servers, changelogs, partitions):
        await _record(servers, topic, key, current)
        return True
    raise DefinitionsChanged(app_id, changes(stored, current))


def forward_to(db: Any, topic: str) -> int:
    """The edge's side of a rebuild (in a transaction on its state file ``db``, a
    :class:`~crm_pulse.streams.embedded.Database`, on its thread): the topic its log is
    forwarded to is kept with the forwarded position. When the app id changed, the whole log
    is forwarded again, to the new app's events topic; returns the log position the first-read
    markers wait for (the end of the log then: the new workers write whole values only once
    they applied all of it), 0 when nothing changed."""
    from ..embedded import last_position

    conn = db.conn
    before = db.get_meta("forwarded_topic")
    db.set_meta(conn, "forwarded_topic", topic)
    if before is None or before == topic:
        return 0  # the same topic (or a file from before topics were kept: the same, too)
    db.set_meta(conn, "forwarded", "0")
    end = last_position(conn)
    log.warning(
        "the app id changed (events were forwarded to %s): forwarding the whole event log, "
        "%d events, to %s; first-read markers follow once all of it is forwarded",
        before,
        end,
        topic,
    )
    return end


async def tables_differ(deployment: Any) -> DefinitionChanges | None:
    """For readers of the tables (``explain``): what differs between the definitions the
    tables were built with and ``deployment``'s (None: the same, or none recorded yet)."""
    from .app import kafka_servers

    settings = deployment.runtime.faust
    servers = kafka_servers(settings.broker)
    topic = definitions_topic(settings.app_id)
    await _ensure_topic(servers, topic)
    stored = await _read(servers, topic, settings.app_id.encode())
    current = fingerprint(deployment.catalog(), deployment.window_specs())
    if stored is None or stored == current:
        return None
    return changes(stored, current)
