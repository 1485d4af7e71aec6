"""The inbox: webhook requests stored durably before their 2xx, parsed into events afterwards.

:meth:`SQLiteInbox.accept` is what the HTTP server awaits before it answers: concurrent
requests are committed together (group commit), so a burst costs one fsync per batch rather
than one per request, and each caller returns only once its request is on disk.

:meth:`SQLiteInbox.process` then lets each connector's receiver parse the stored requests
(HubSpot's fetch the full records) and, in one transaction, appends the events to the log and
removes the request. A request whose parsing fails stays with its error and attempt count (shown
on /status) and is tried again later: never dropped silently.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping

from ..connectors.protocols import WebhookReceiver, WebhookRequest
from ..errors import CrmPulseError, FatalError
from ..metrics.events import Event
from ..retry import Backoff
from .database import Database
from .log import append_events

__all__ = ["SQLiteInbox"]

log = logging.getLogger("crm_pulse.inbox")

_Pending = tuple[str, WebhookRequest, "asyncio.Future[None]"]


class SQLiteInbox:
    def __init__(
        self,
        db: Database,
        receivers: Mapping[str, WebhookReceiver],
        *,
        on_stored: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        retry_after: float = 5.0,
    ) -> None:
        self.db = db
        self.receivers = dict(receivers)
        self.on_stored = on_stored
        self.clock = clock
        self.backoff = Backoff(initial=retry_after, maximum=retry_after * 2**10, attempts=None)
        """When a stored request that failed to parse is tried again (:mod:`crm_pulse.retry`)."""
        self._pending: list[_Pending] = []
        self._committer: asyncio.Task[None] | None = None
        self.accepted = 0
        self.parsed_events = 0
        self.last_error = ""

    # ------------------------------------------------------------ before the 2xx
    async def accept(self, connector: str, request: WebhookRequest) -> None:
        """Return once the request is committed to disk."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((connector, request, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_pending())
        await future

    async def _commit_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []

            def insert(conn: sqlite3.Connection, batch: list[_Pending] = batch) -> None:
                conn.executemany(
                    "INSERT INTO inbox (connector, method, url, headers, body, received_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (
                            name,
                            r.method,
                            r.url,
                            json.dumps(dict(r.headers)),
                            r.body,
                            r.received_at_ms,
                        )
                        for name, r, _ in batch
                    ],
                )

            try:
                await self.db.run(self.db.transaction(insert))
            except Exception as exc:  # the callers answer 503; nothing was acknowledged
                for _, _, f in batch:
                    if not f.done():
                        f.set_exception(exc)
                continue
            self.accepted += len(batch)
            for _, _, f in batch:
                if not f.done():
                    f.set_result(None)
            if self.on_stored is not None:
                self.on_stored()

    # ------------------------------------------------------------ after the 2xx
    async def process(self, limit: int = 100) -> int:
        """Parse due stored requests into log events; returns how many requests were done."""
        now = self.clock()

        def fetch() -> list[tuple[int, str, WebhookRequest, int]]:
            rows = self.db.conn.execute(
                "SELECT id, connector, method, url, headers, body, received_ms, attempts "
                "FROM inbox WHERE due_ms <= ? ORDER BY id LIMIT ?",
                (int(now * 1000), limit),
            ).fetchall()
            return [
                (
                    int(i),
                    str(c),
                    WebhookRequest(m, u, json.loads(h), bytes(b), int(r)),
                    int(a),
                )
                for i, c, m, u, h, b, r, a in rows
            ]

        done = 0
        for row_id, connector, request, attempts in await self.db.run(fetch):
            receiver = self.receivers.get(connector)
            try:
                if receiver is None:
                    raise FatalError(f"no webhook receiver for connector {connector!r}")
                events = await receiver.parse(request)
            except FatalError:
                raise
            except (CrmPulseError, ValueError) as exc:
                self.last_error = f"{connector}: {exc}"
                log.warning(
                    "stored webhook could not be parsed; will retry",
                    extra={"connector": connector, "inbox_id": row_id, "reason": str(exc)},
                )
                retry_ms = int((now + self.backoff.delay(attempts + 1)) * 1000)

                def failed(
                    conn: sqlite3.Connection,
                    row_id: int = row_id,
                    msg: str = str(exc),
                    at: int = retry_ms,
                ) -> None:
                    conn.execute(
                        "UPDATE inbox SET attempts = attempts + 1, last_error = ?, "
                        "due_ms = ? WHERE id = ?",
                        (msg, at, row_id),
                    )

                await self.db.run(self.db.transaction(failed))
                continue

            def store(
                conn: sqlite3.Connection,
                row_id: int = row_id,
                connector: str = connector,
                events: list[Event] = events,
            ) -> None:
                append_events(conn, connector, events, int(self.clock() * 1000))
                conn.execute("DELETE FROM inbox WHERE id = ?", (row_id,))

            await self.db.run(self.db.transaction(store))
            self.parsed_events += len(events)
            done += 1
        return done

    def depth(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0])
