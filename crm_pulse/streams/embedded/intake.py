"""The intake: everything that takes input and makes it durable, before any metric is computed.

::

    sources ──poll──▶ log ◀── inbox ◀── HTTP (webhooks, signed ingress; 2xx after commit)
                       │
                  (whoever reads the log: the embedded consumer, or the Faust edge's forwarder)

:class:`Intake` holds the state file (:class:`~.database.Database`), the connectors, the durable
webhook inbox (:class:`~.inbox.SQLiteInbox`), one :class:`~.pollers.Poller` per source with its
cursor, the event log (:mod:`.log`) and the quarantine (:mod:`.quarantine`), and says how healthy
they are. It builds no engine, planner or writer and holds no metric state: the embedded runtime
(:class:`~.runtime.EmbeddedRuntime`) puts its consumer behind it; the Faust runtime's edge
(``crm_pulse.streams.faust.edge``) puts a forwarder into Kafka behind it.

The reader of the log tells the intake when it took events (:meth:`Intake.taken`) and whether it
runs (:attr:`Intake.reading`): while it runs and holds a full hand-over of parsed events
(:class:`~.log.RecentEvents`), the pollers wait, so a source never reads ahead of its reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...config.models import Deployment
from ...connectors.protocols import Connector
from ...connectors.registry import build_connector
from ...errors import FatalError
from ...metrics.events import Event
from . import quarantine
from .database import Database
from .inbox import SQLiteInbox
from .log import BadEntry, RecentEvents, append_events, last_position, read_log
from .pollers import Cycle, Poller, first_read_position

__all__ = [
    "STALL_INTERVALS",
    "Intake",
    "IntakeFront",
    "LogBatch",
    "build_connectors",
    "cannot_listen",
]

log = logging.getLogger("crm_pulse.runtime")

STALL_INTERVALS = 5
"""A source that made no progress for this many poll intervals makes /healthz degraded."""


def build_connectors(deployment: Deployment) -> dict[str, Connector]:
    """Every connector of the deployment, built through its entry point."""
    return {
        entry.name: build_connector(entry.kind, entry.name, entry.settings)
        for entry in deployment.connectors
    }


def cannot_listen(exc: OSError, key: str, address: str) -> FatalError:
    """The one line ``run`` exits with when ``address`` (the value of ``key``) cannot be bound."""
    if exc.errno == errno.EADDRINUSE:
        return FatalError(
            f"cannot listen on {address}: the address is in use by another process "
            f"(stop it, or change {key})"
        )
    return FatalError(f"cannot listen on {address}: {exc.strerror or exc}")


@dataclass(frozen=True)
class LogBatch:
    """What :meth:`Intake.read` found after a position: the valid events, the entries that are
    not valid events (to quarantine), and the log's last position."""

    events: list[tuple[int, Event]]
    bad: list[BadEntry]
    last: int

    @property
    def position(self) -> int | None:
        """The position of the last entry read (None: nothing was read)."""
        ends = [p for p, _ in self.events[-1:]] + [b.position for b in self.bad[-1:]]
        return max(ends) if ends else None


class IntakeFront:
    """For a runtime built on an :class:`Intake` (the embedded runtime, the Faust edge): the
    intake's state that the HTTP server and the status read and set, as the runtime's own."""

    intake: Intake

    @property
    def unhealthy(self) -> str | None:
        return self.intake.unhealthy

    @unhealthy.setter
    def unhealthy(self, why: str | None) -> None:
        self.intake.unhealthy = why

    @property
    def http_port(self) -> int:
        return self.intake.http_port

    @http_port.setter
    def http_port(self, port: int) -> None:
        self.intake.http_port = port

    @property
    def ops_port(self) -> int:
        return self.intake.ops_port

    @ops_port.setter
    def ops_port(self, port: int) -> None:
        self.intake.ops_port = port


class Intake:
    """The durable front of a runtime: state file, connectors, inbox, pollers, log, quarantine."""

    def __init__(
        self,
        deployment: Deployment,
        *,
        connectors: Mapping[str, Connector] | None = None,
        clock: Callable[[], float] = time.time,
        state_path: str | Path | None = None,
        on_cycle: Callable[[Cycle], None] | None = None,
        check: bool = True,
    ) -> None:
        """``check=False``: the state file's whole-file checks wait (:meth:`Database.check`)."""
        self.deployment = deployment
        self.settings = deployment.runtime
        self.clock = clock
        self.db = Database(state_path or self.settings.state_path, check=check)
        self.connectors = (
            dict(connectors) if connectors is not None else build_connectors(deployment)
        )
        self.recent = RecentEvents(self.db, limit=max(20_000, 4 * self.settings.batch_size))
        """Appended events handed to the log's reader parsed: each event is parsed once."""
        self.reading = False
        """The log's reader runs: sources are paced by its backlog (see :meth:`taken`)."""
        self._taken = asyncio.Event()
        self.stored = asyncio.Event()
        """Set when events are appended (the log's reader waits on it)."""
        self._wake_inbox = asyncio.Event()
        self.pollers = {
            name: Poller(
                self.db,
                name,
                c.source,
                c.poll_interval,
                clock=clock,
                on_stored=self.wake,
                on_cycle=on_cycle,
                quarantine=quarantine.put_bad_records,
                recent=self.recent,
                pace=self._pace,
            )
            for name, c in self.connectors.items()
            if c.source is not None
        }
        self.receivers = {
            n: c.receiver for n, c in self.connectors.items() if c.receiver is not None
        }
        self.inbox = SQLiteInbox(
            self.db,
            self.receivers,
            on_stored=self.wake,
            clock=clock,
            windows={n: r.replay_window for n, r in self.receivers.items()},
            recent=self.recent,
        )
        self.started_ms = int(clock() * 1000)
        self.unhealthy: str | None = None
        self.http_port = 0
        self.ops_port = 0

    # ------------------------------------------------------------ feeding
    def wake(self) -> None:
        """New events or requests are stored: let the log's reader and the inbox look now."""
        self.stored.set()
        self._wake_inbox.set()

    async def ingest(self, connector: str, events: Sequence[Event]) -> None:
        """Append events to the log durably (tests, imports, the config's quotas and spend)."""
        now_ms = int(self.clock() * 1000)
        await self.db.run(
            self.db.transaction(
                lambda conn: append_events(conn, connector, events, now_ms, self.recent)
            )
        )
        self.wake()

    async def load_config_events(self) -> None:
        """Quotas and spend from the deployment file, versioned by the start time so an edited
        file replaces what an older start applied."""
        events = self.deployment.config_events(version=self.started_ms)
        if events:
            await self.ingest("config", events)

    def taken(self) -> None:
        """The log's reader took events: a source held back may store its next page."""
        self._taken.set()

    async def _pace(self) -> None:
        """Hold a source back while the reader has a full hand-over of events to take (only
        while it runs: ``crm-pulse backfill`` stores without applying)."""
        while self.reading and len(self.recent) >= self.recent.limit:
            self._taken.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._taken.wait(), timeout=1.0)

    # ------------------------------------------------------------ the log, for its reader
    async def read(self, after: int, limit: int) -> LogBatch:
        """Up to ``limit`` log entries after position ``after`` (parsed once: see ``recent``)."""

        def run() -> LogBatch:
            conn = self.db.conn
            good, bad = read_log(conn, after, limit, self.recent)
            return LogBatch(good, bad, last_position(conn))

        return await self.db.run(run)

    @staticmethod
    def quarantine_entries(conn: sqlite3.Connection, bad: Sequence[BadEntry], now_ms: int) -> None:
        """Quarantine log entries that are not valid events (in the caller's transaction)."""
        for entry in bad:
            quarantine.put(
                conn,
                entry.connector,
                "event",
                str(entry.position),
                entry.reason,
                payload=entry.body,
                now_ms=now_ms,
            )

    async def first_read_position(self, connector: str) -> int | None:
        """The log position where ``connector``'s first complete read ended (None: not yet)."""
        return await self.db.run(lambda: first_read_position(self.db.conn, connector))

    # ------------------------------------------------------------ running
    async def _inbox_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            done = await self.inbox.process()
            if done:
                continue
            self._wake_inbox.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_inbox.wait(), timeout=1.0)

    def tasks(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        """The intake's loops (the inbox processor, one poller per source) until ``stop``."""
        return [
            asyncio.create_task(self._inbox_loop(stop), name="inbox"),
            *(asyncio.create_task(p.run(stop), name=f"poll:{n}") for n, p in self.pollers.items()),
        ]

    async def backfill_first(self) -> None:
        """Backfill every source that never completed one (``run --backfill-first``)."""
        for poller in self.pollers.values():
            if not poller.stats.backfilled:
                await poller.backfill()

    async def drain(self) -> None:
        """Parse what the inbox holds (after the HTTP server stopped, before closing)."""
        await self.inbox.process(limit=10_000)

    async def supervise(
        self,
        stop: asyncio.Event,
        inner: asyncio.Event,
        tasks: Sequence[asyncio.Task[Any]],
        server: Any,
    ) -> BaseException | None:
        """Run a runtime's loops: wait until ``stop`` is set or one of ``tasks`` fails, then stop
        taking requests (``server``, an object with ``async stop()``, if any), tell the loops to
        end (``inner``) and cancel them. Returns the failure, which also makes the intake
        unhealthy, or None; the runtime then drains what was accepted (after a clean stop only)
        and closes. Cancelled itself (a Faust worker stopping), it does the same and re-raises."""
        waiter = asyncio.create_task(stop.wait())
        failure: BaseException | None = None
        try:
            done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            failed = [t for t in done if t is not waiter and t.exception() is not None]
            if failed:
                failure = failed[0].exception()
                self.unhealthy = f"{failed[0].get_name()} stopped: {failure}"
                log.error("stopping: %s", self.unhealthy)
        finally:
            if server is not None:
                await server.stop()
            inner.set()
            for task in [*tasks, waiter]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return failure

    async def close(self) -> None:
        for connector in self.connectors.values():
            with contextlib.suppress(Exception):
                await connector.aclose()
        await asyncio.to_thread(self.db.close)

    # ------------------------------------------------------------ looking
    def health(self) -> str | None:
        """None when healthy, else why not (for /healthz): a stopped task, or a source that
        made no progress for :data:`STALL_INTERVALS` poll intervals (degraded)."""
        if self.unhealthy:
            return self.unhealthy
        now = self.clock()
        stalled = []
        for name, poller in self.pollers.items():
            st = poller.stats
            since = (st.last_ok_ms or self.started_ms) / 1000
            if st.last_error and now - since > STALL_INTERVALS * poller.interval:
                stalled.append(f"{name} made no progress for {now - since:.0f} s ({st.last_error})")
        return "degraded: " + "; ".join(stalled)[:500] if stalled else None

    def read_status(self, conn: sqlite3.Connection) -> dict[str, Any]:
        """The intake's part of ``/status`` read from the state file (on the database thread)."""
        return {
            "log_position": last_position(conn),
            "inbox_depth": self.inbox.depth(conn),
            "quarantined": quarantine.count(conn),
            "quarantine": [  # the newest entries, without their excerpts (quarantine show)
                {
                    "id": e.id,
                    "connector": e.connector,
                    "stage": e.stage,
                    "position": e.position,
                    "reason": e.reason,
                    "at_ms": e.created_ms,
                    "retries": e.retries,
                }
                for e in quarantine.entries(conn, 10)
            ],
        }

    def connector_status(self, name: str) -> dict[str, Any]:
        """A connector's kind and its source's progress (cursor, events, lag, last error)."""
        item: dict[str, Any] = {"kind": self.connectors[name].kind}
        poller = self.pollers.get(name)
        if poller is not None:
            now = self.clock()
            st = poller.stats
            item.update(
                cursor=st.cursor,
                events=st.events,
                pages=st.pages,
                skipped=st.skipped,
                backfilled=st.backfilled,
                last_poll_ms=st.last_poll_ms or None,
                last_ok_ms=st.last_ok_ms or None,
                lag_seconds=None if not st.last_ok_ms else round(now - st.last_ok_ms / 1000, 3),
                last_error=st.last_error,
            )
        return item

    def inbox_status(self) -> dict[str, Any]:
        return {
            "inbox_accepted": self.inbox.accepted,
            "inbox_duplicates": self.inbox.duplicates,
        }

    def uptime(self) -> float:
        return max(self.clock() - self.started_ms / 1000, 1e-9)

    def startup_lines(self) -> list[str]:
        """The intake's part of what ``run`` says when it starts (no secret)."""
        host = self.settings.host
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{self.http_port or self.settings.port}"
        ops_url = url
        if self.settings.ops_listen is not None:  # the operations endpoints listen apart
            ops_host, _, ops_port = self.settings.ops_listen.rpartition(":")
            ops_url = f"http://{ops_host}:{self.ops_port or ops_port}"
        kinds = ", ".join(f"{n} ({c.kind})" for n, c in self.connectors.items()) or "none"
        ops = f"status page {ops_url}/, JSON {ops_url}/status, Prometheus {ops_url}/metrics"
        if self.settings.ops_token is not None:
            ops += "; they need runtime.ops_token"
        return [f"listening on {url} ({ops})", f"connectors: {kinds}"]
