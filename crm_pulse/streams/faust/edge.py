"""The edge of a Faust deployment: webhooks, the signed ingress and pollers, into Kafka.

The edge is the embedded runtime's front half unchanged (HTTP server, durable inbox, pollers
with cursors, the SQLite event log: a webhook is still acknowledged only once it is on disk)
with its back half replaced: instead of applying the log to an engine, :class:`EdgeRuntime`
forwards it to the ``<app>-events`` topic, keyed by record, and remembers the forwarded
position only after Kafka acknowledged every message (the transactional-outbox pattern). A crash
between the two re-sends a few events; record versions make that harmless. Metrics and
write-back happen in the Faust workers.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from functools import partial
from typing import Any

from ...config.models import Deployment
from ..embedded import quarantine
from ..embedded.consumer import BatchResult
from ..embedded.database import Database
from ..embedded.log import last_position, read_log
from ..embedded.pollers import first_read_position
from ..embedded.runtime import EmbeddedRuntime
from .definitions import forward_to
from .phases import FIRST_READ, first_read_marker

log = logging.getLogger("crm_pulse.faust")

__all__ = ["EdgeRuntime"]


def _forwarded(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE name = 'forwarded'").fetchone()
    return 0 if row is None else int(row[0])


class EdgeRuntime(EmbeddedRuntime):
    """Receives and polls like the embedded runtime; forwards its log to Kafka."""

    def __init__(self, deployment: Deployment, **kwargs: Any) -> None:
        super().__init__(deployment, **kwargs)
        self.writers = {}  # the Faust workers write back
        settings = deployment.runtime.faust
        self.topic = f"{settings.app_id}-events"
        self.bootstrap = [u.split("://", 1)[-1] for u in settings.broker.split(";")]
        self._producer: Any = None
        self._markers_due = set(self.planner.waiting_for)
        # a new app id (a rebuild): the whole log again, markers after all of it
        self._catch_up = self.db.call(
            lambda: self.db.transaction(lambda conn: forward_to(conn, self.topic))()
        )
        """Pulling sources whose first-read markers are not in Kafka yet (see
        :data:`~.phases.FIRST_READ`); sent again after a restart, which is harmless."""

    async def _producer_started(self) -> Any:
        if self._producer is None:
            from aiokafka import AIOKafkaProducer

            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", linger_ms=5
            )
            await self._producer.start()
        return self._producer

    async def consume(self) -> BatchResult:
        """Forward the next batch of the log to Kafka; the position moves after the acks."""
        limit = self.settings.batch_size

        def read() -> tuple[list[Any], list[Any], int]:
            conn = self.db.conn
            good, bad = read_log(conn, _forwarded(conn), limit)
            return good, bad, last_position(conn)

        rows, bad, last = await self.db.run(read)
        if rows or bad:
            producer: Any = await self._producer_started() if rows else None
            futures = []
            for _, event in rows:
                body = json.dumps(event.model_dump(mode="json"), separators=(",", ":")).encode()
                futures.append(
                    await producer.send(self.topic, body, key="/".join(event.key).encode())
                )
            for future in futures:
                await future
            position = max([p for p, _ in rows[-1:]] + [b.position for b in bad[-1:]])
            now_ms = int(self.clock() * 1000)

            def forwarded(conn: sqlite3.Connection) -> None:
                for entry in bad:  # not a valid event: quarantined, not forwarded
                    quarantine.put(
                        conn,
                        entry.connector,
                        "event",
                        str(entry.position),
                        entry.reason,
                        payload=entry.body,
                        now_ms=now_ms,
                    )
                Database.set_meta(conn, "forwarded", str(position))

            await self.db.run(self.db.transaction(forwarded))
            self.consumed_events += len(rows)
        else:
            position = await self.db.run(lambda: _forwarded(self.db.conn))
        if self._markers_due:
            await self._send_first_reads(position)
        return BatchResult(len(rows), 0, 0, 0, position, last - position)

    async def _send_first_reads(self, forwarded: int) -> None:
        """A marker in every events partition for each source whose first read is forwarded."""
        partitions = self.deployment.runtime.faust.partitions
        for source in sorted(self._markers_due):
            done = await self.db.run(partial(first_read_position, self.db.conn, source))
            if done is None or max(done, self._catch_up) > forwarded:
                continue
            producer = await self._producer_started()
            body = first_read_marker(source)
            futures = [
                await producer.send(self.topic, body, key=FIRST_READ, partition=p)
                for p in range(partitions)
            ]
            for future in futures:
                await future
            self._markers_due.discard(source)
            self.planner.first_read_done(source)  # what /status and the log report
            log.info("first complete read forwarded", extra={"connector": source})

    async def tick(self) -> int:
        return 0  # time is handled by the workers

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        await super().close()
