"""The edge of a Faust deployment: webhooks, the signed ingress and pollers, into Kafka.

The edge is the embedded runtime's durable front, :class:`~crm_pulse.streams.embedded.Intake`
(HTTP server, durable inbox, pollers with cursors, the SQLite event log, the quarantine: a
webhook is still acknowledged only once it is on disk), with a forwarder behind it instead of
an engine: :class:`EdgeRuntime` forwards the log to the ``<app>-events`` topic, keyed by record,
and remembers the forwarded position only after Kafka acknowledged every message (the
transactional-outbox pattern). A crash between the two re-sends a few events; record versions
make that harmless. It builds no engine, planner or writer and holds no metric state: metrics
and write-back happen in the Faust workers, whose dead letters (writes the CRM refused for good)
its ``/status`` shows (:mod:`.deadletters`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...config.models import Deployment
from ...connectors.protocols import Connector
from ...errors import FatalError
from ..embedded import Database, Intake, IntakeFront, cannot_listen
from .app import kafka_servers
from .deadletters import DeadLetterView, dead_letter_topic
from .definitions import forward_to
from .phases import FIRST_READ, first_read_marker

log = logging.getLogger("crm_pulse.faust")

__all__ = ["EdgeRuntime", "Forwarded"]

FORWARDED = "forwarded"
"""The state file's meta entry: the last log position Kafka acknowledged."""


@dataclass(frozen=True)
class Forwarded:
    """One round of :meth:`EdgeRuntime.forward`: events sent, the position, what is left."""

    events: int
    quarantined: int
    position: int
    backlog: int


class EdgeRuntime(IntakeFront):
    """Receives and polls like the embedded runtime (the same :class:`Intake`); forwards its
    log to Kafka."""

    def __init__(
        self,
        deployment: Deployment,
        *,
        connectors: Mapping[str, Connector] | None = None,
        clock: Callable[[], float] = time.time,
        state_path: str | Path | None = None,
    ) -> None:
        self.deployment = deployment
        self.settings = deployment.runtime
        self.clock = clock
        self.intake = Intake(deployment, connectors=connectors, clock=clock, state_path=state_path)
        self.db = self.intake.db
        self.connectors = self.intake.connectors
        self.pollers = self.intake.pollers
        self.receivers = self.intake.receivers
        self.inbox = self.intake.inbox
        settings = deployment.runtime.faust
        self.topic = f"{settings.app_id}-events"
        self.bootstrap = kafka_servers(settings.broker)
        self._producer: Any = None
        self.first_reads_due = {n for n, c in self.connectors.items() if c.source is not None}
        """Pulling sources whose first-read markers are not in Kafka yet (see
        :data:`~.phases.FIRST_READ`); sent again after a restart, which is harmless."""
        self.catch_up = self.db.call(
            self.db.transaction(lambda _conn: forward_to(self.db, self.topic))
        )
        """A new app id (a rebuild): the whole log again, markers only after this position."""
        self.forwarded_events = 0
        self.quarantined = 0
        self.dead_letters = DeadLetterView(self.bootstrap, dead_letter_topic(settings.app_id))

    # ------------------------------------------------------------ forwarding
    async def _producer_started(self) -> Any:
        if self._producer is None:
            from aiokafka import AIOKafkaProducer

            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", linger_ms=5
            )
            await self._producer.start()
        return self._producer

    def _position(self) -> int:
        value = self.db.get_meta(FORWARDED)
        return 0 if value is None else int(value)

    async def forward(self) -> Forwarded:
        """Forward the next batch of the log to Kafka; the position moves after the acks."""
        after = await self.db.run(self._position)
        batch = await self.intake.read(after, self.settings.batch_size)
        self.intake.taken()
        position = batch.position
        if position is not None:
            if batch.events:
                producer = await self._producer_started()
                futures = []
                for _, event in batch.events:
                    body = json.dumps(event.model_dump(mode="json"), separators=(",", ":"))
                    futures.append(
                        await producer.send(
                            self.topic, body.encode(), key="/".join(event.key).encode()
                        )
                    )
                for future in futures:
                    await future
            now_ms = int(self.clock() * 1000)
            done = position

            def forwarded(conn: Any) -> None:
                # not a valid event: quarantined, not forwarded
                self.intake.quarantine_entries(conn, batch.bad, now_ms)
                Database.set_meta(conn, FORWARDED, str(done))

            await self.db.run(self.db.transaction(forwarded))
            self.forwarded_events += len(batch.events)
            self.quarantined += len(batch.bad)
        else:
            position = after
        if self.first_reads_due:
            await self._send_first_reads(position)
        return Forwarded(len(batch.events), len(batch.bad), position, batch.last - position)

    async def forward_all(self) -> int:
        """Forward until the log has no backlog; returns the events forwarded."""
        total = 0
        while True:
            result = await self.forward()
            total += result.events
            if result.backlog <= 0:
                return total

    async def _send_first_reads(self, forwarded: int) -> None:
        """A marker in every events partition for each source whose first read is forwarded."""
        partitions = self.deployment.runtime.faust.partitions
        for source in sorted(self.first_reads_due):
            done = await self.intake.first_read_position(source)
            if done is None or max(done, self.catch_up) > forwarded:
                continue
            producer = await self._producer_started()
            body = first_read_marker(source)
            futures = [
                await producer.send(self.topic, body, key=FIRST_READ, partition=p)
                for p in range(partitions)
            ]
            for future in futures:
                await future
            self.first_reads_due.discard(source)
            log.info("first complete read forwarded", extra={"connector": source})

    async def _forward_loop(self, stop: asyncio.Event) -> None:
        stored = self.intake.stored
        self.intake.reading = True
        try:
            while not stop.is_set():
                result = await self.forward()
                if result.backlog > 0:
                    continue
                stored.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stored.wait(), timeout=1.0)
        finally:
            self.intake.reading = False
            self.intake.taken()

    # ------------------------------------------------------------ running
    async def run(self, stop: asyncio.Event, *, serve: Callable[[Any], Any] | None = None) -> None:
        """Forward what the log holds, serve, poll and forward until ``stop``; then drain."""
        intake = self.intake
        await intake.load_config_events()
        await self.forward_all()
        try:
            server = await serve(self) if serve is not None else None
        except OSError as exc:
            await self.close()
            raise cannot_listen(exc, "runtime.listen", self.settings.listen) from None
        except FatalError:  # the operations address (runtime.ops_listen) is taken
            await self.close()
            raise
        for line in self.startup_summary():
            log.info(line)
        inner = asyncio.Event()
        tasks = [
            asyncio.create_task(self._forward_loop(inner), name="forwarder"),
            *intake.tasks(inner),
        ]
        try:
            failure = await intake.supervise(stop, inner, tasks, server)
        except asyncio.CancelledError:  # the worker stops: nothing left open
            await self.close()
            raise
        if failure is None:
            await intake.drain()
            await self.forward_all()
        await self.close()
        if failure is not None:
            raise failure

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        await self.dead_letters.close()
        await self.intake.close()

    def startup_summary(self) -> list[str]:
        faust = self.deployment.runtime.faust
        lines = [
            *self.intake.startup_lines(),
            f"forwarding the event log to {self.topic} ({faust.broker}); "
            "metrics and write-back run in the Faust workers",
            f"state file: {self.db.path}",
        ]
        return lines

    # ------------------------------------------------------------ looking
    def health(self) -> str | None:
        return self.intake.health()

    async def status_async(self) -> dict[str, Any]:
        """Operational status (no secrets): the intake, the forwarded position, the workers'
        dead letters."""
        intake = self.intake
        await self.dead_letters.refresh()

        def read() -> dict[str, Any]:
            conn = self.db.conn
            return {**intake.read_status(conn), "forwarded_position": self._position()}

        db = await self.db.run(read)
        errors = [e for e in (self.inbox.last_error, self.dead_letters.error) if e]
        return {
            "runtime": "faust edge",
            "connectors": {name: intake.connector_status(name) for name in self.connectors},
            "events_per_second": round(self.forwarded_events / intake.uptime(), 3),
            "first_reads_pending": sorted(self.first_reads_due),
            "backlog": db["log_position"] - db["forwarded_position"],
            **db,
            "dead_letters": len(self.dead_letters.letters),
            "recent_dead_letters": self.dead_letters.rows(10),
            **intake.inbox_status(),
            "last_errors": errors,
        }

    async def overview(self) -> dict[str, Any]:
        """The status page: the edge's status; metric values live in the workers' tables."""
        return {
            "status": await self.status_async(),
            "metrics": [],
            "writes": [],
            "rules": [],
            "now_ms": int(self.clock() * 1000),
            "timezone": self.deployment.timezone,
            "currency": self.deployment.metrics.currency,
        }

    async def metric_values(self) -> list[dict[str, Any]]:
        return []  # computed by the workers, not here

    async def explain(
        self, metric: str, window: str, group: Sequence[str], as_of: str | None = None
    ) -> dict[str, Any]:
        raise ValueError(
            "the Faust workers hold the metric state: run crm-pulse explain --config on this "
            "deployment file"
        )
