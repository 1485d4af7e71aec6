"""Pollers: pull each source into the log, its cursor moving in the same transaction.

A page of events and the cursor after it are committed together, so after a crash the source
resumes exactly after the last page on disk (re-reading at most one page, which record versions
make harmless). The records a page skipped (:attr:`Page.skipped`, and those reported with
:func:`~crm_pulse.connectors.rejects.reject` while reading it) go to the ``quarantine`` hook (the
runtime's quarantine table) in the same transaction. A source that raises for bad data (a
:class:`~crm_pulse.errors.DataError`, a pydantic error building an event) does not stop the
runtime: the error is quarantined once for that cursor, the poll is retried with backoff, and
``/healthz`` says degraded while the source makes no progress. A source that cannot be reached
before it was ever read (a wrong URL, a CRM that is down at the first start) stops the runtime
with a :class:`~crm_pulse.errors.FatalError` naming it. A backfill keeps its own cursor (``mode = "backfill"``) and, when it completes,
hands its final cursor to incremental polling: the runtime continues from where it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...connectors.protocols import BadRecord, Cursor, Page, Source
from ...connectors.rejects import collecting
from ...errors import FatalError, RateLimited, RetriableError, SkippableError
from ...retry import Backoff
from . import quarantine
from .database import Database
from .log import RecentEvents, append_events, last_position

__all__ = ["Cycle", "Poller", "PollerStats", "Quarantine", "first_read_position", "load_cursor"]

log = logging.getLogger("crm_pulse.pollers")

_DONE = "done"

Quarantine = Callable[[sqlite3.Connection, str, Sequence[BadRecord], int], None]
"""``(conn, connector, records, now_ms)``: keep the records a source skipped, inside the
transaction that stores the page (the hook for the runtime's quarantine table)."""


def load_cursor(conn: sqlite3.Connection, connector: str, mode: str) -> Cursor | None:
    row = conn.execute(
        "SELECT cursor FROM cursors WHERE connector = ? AND mode = ?", (connector, mode)
    ).fetchone()
    if row is None:
        return None
    value: Any = json.loads(row[0])
    return value if isinstance(value, dict) else None


def _save_cursor(
    conn: sqlite3.Connection, connector: str, mode: str, cursor: Cursor, now_ms: int
) -> None:
    conn.execute(
        "INSERT INTO cursors (connector, mode, cursor, updated_ms) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (connector, mode) DO UPDATE SET cursor = excluded.cursor, "
        "updated_ms = excluded.updated_ms",
        (connector, mode, json.dumps(cursor, sort_keys=True), now_ms),
    )


def _mark_first_read(conn: sqlite3.Connection, connector: str, now_ms: int) -> None:
    """The source's first complete read is in the log, up to its current end."""
    if load_cursor(conn, connector, _DONE) is None:
        cursor = {"at_ms": now_ms, "position": last_position(conn)}
        _save_cursor(conn, connector, _DONE, cursor, now_ms)


def first_read_position(conn: sqlite3.Connection, connector: str) -> int | None:
    """Where the log held the source's whole first read (None: not finished yet)."""
    done = load_cursor(conn, connector, _DONE)
    return None if done is None else int(done.get("position", 0))


@dataclass(frozen=True)
class Cycle:
    """One finished backfill or poll: what it read and where the log ended after it."""

    connector: str
    kind: str  # "backfill" or "poll"
    read: int
    pages: int
    seconds: float
    position: int
    skipped: int = 0


@dataclass
class PollerStats:
    events: int = 0
    pages: int = 0
    last_poll_ms: int = 0
    last_ok_ms: int = 0
    skipped: int = 0
    """Records the source could not map (reported in its pages, never read again)."""
    last_error: str = ""
    cursor: Cursor | None = None
    backfilled: bool = False


class Poller:
    """Moves one connector's source into the log."""

    def __init__(
        self,
        db: Database,
        connector: str,
        source: Source,
        interval: float,
        *,
        clock: Callable[[], float] = time.time,
        on_stored: Callable[[], None] | None = None,
        on_cycle: Callable[[Cycle], None] | None = None,
        quarantine: Quarantine | None = None,
        recent: RecentEvents | None = None,
        pace: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.recent = recent
        """Where stored events are handed to the consumer parsed (:class:`~.log.RecentEvents`)."""
        self.pace = pace
        """Awaited before each page is stored: the runtime holds a source back while its
        consumer is far behind (the source keeps what is not read yet; reading ahead would
        only fill memory, or make the consumer parse again what was read)."""
        self.quarantine = quarantine
        """Where the records a page skipped go, in the page's transaction (None: logged and
        counted in ``stats.skipped`` only)."""
        self.connector = connector
        self.source = source
        self.interval = interval
        self.backoff = Backoff(initial=2 * interval, maximum=max(300.0, interval), attempts=None)
        """Waits after failed polls (:mod:`crm_pulse.retry`), never shorter than ``interval``."""
        self.clock = clock
        self.on_stored = on_stored
        self.on_cycle = on_cycle
        self.stats = PollerStats()
        self._quarantined: tuple[str, str] | None = None
        self.stats.cursor = db.call(lambda: load_cursor(db.conn, connector, "poll"))
        self.stats.backfilled = db.call(lambda: load_cursor(db.conn, connector, _DONE)) is not None

    async def _store(self, page: Page, mode: str, reported: list[BadRecord]) -> None:
        if self.pace is not None:
            await self.pace()
        now_ms = int(self.clock() * 1000)
        rejected = [*page.skipped, *reported]
        reported.clear()  # what connectors.rejects.reject collected while reading this page

        def run(conn: sqlite3.Connection) -> None:
            append_events(conn, self.connector, page.events, now_ms, self.recent)
            if rejected and self.quarantine is not None:
                self.quarantine(conn, self.connector, rejected, now_ms)
            _save_cursor(conn, self.connector, mode, page.cursor, now_ms)

        await self.db.run(self.db.transaction(run))
        for bad in rejected:
            log.warning(
                "record skipped",
                extra={
                    "connector": self.connector,
                    "record": f"{bad.object} {bad.id}",
                    "reason": bad.reason,
                    "where": bad.where,
                },
            )
        self.stats.skipped += len(rejected)
        self.stats.events += len(page.events)
        self.stats.pages += 1
        if self.on_stored is not None and page.events:
            self.on_stored()

    async def backfill(self, progress: Callable[[int], None] | None = None) -> int:
        """Pull all history (resuming an interrupted backfill); returns the events stored."""
        start = await self.db.run(lambda: load_cursor(self.db.conn, self.connector, "backfill"))
        began, pages, skipped = self.clock(), self.stats.pages, self.stats.skipped
        count = 0
        last: Cursor | None = start
        with collecting() as reported:
            async for page in self.source.backfill(start):
                await self._store(page, "backfill", reported)
                count += len(page.events)
                last = page.cursor
                if progress is not None:
                    progress(len(page.events))
        now_ms = int(self.clock() * 1000)
        final = last or {}

        def finish(conn: sqlite3.Connection) -> None:
            if load_cursor(conn, self.connector, "poll") is None:
                _save_cursor(conn, self.connector, "poll", final, now_ms)
            _mark_first_read(conn, self.connector, now_ms)

        await self.db.run(self.db.transaction(finish))
        self.stats.cursor = await self.db.run(
            lambda: load_cursor(self.db.conn, self.connector, "poll")
        )
        self.stats.backfilled = True
        await self._cycle("backfill", count, self.stats.pages - pages, began, skipped)
        return count

    async def _cycle(self, kind: str, read: int, pages: int, began: float, skipped: int) -> None:
        if self.on_cycle is not None:
            position = await self.db.run(lambda: last_position(self.db.conn))
            seconds = self.clock() - began
            bad = self.stats.skipped - skipped
            self.on_cycle(Cycle(self.connector, kind, read, pages, seconds, position, bad))

    async def poll_once(self) -> int:
        """One incremental pass from the stored cursor; returns the events stored."""
        self.stats.last_poll_ms = int(self.clock() * 1000)
        began, pages, skipped = self.clock(), self.stats.pages, self.stats.skipped
        count = 0
        with collecting() as reported:
            async for page in self.source.poll(self.stats.cursor):
                await self._store(page, "poll", reported)
                self.stats.cursor = page.cursor
                count += len(page.events)
        self.stats.last_ok_ms = int(self.clock() * 1000)
        self.stats.last_error = ""
        if not self.stats.backfilled:  # a poll from no cursor reads everything: a first read
            now_ms = self.stats.last_ok_ms
            await self.db.run(
                self.db.transaction(lambda conn: _mark_first_read(conn, self.connector, now_ms))
            )
            self.stats.backfilled = True
        await self._cycle("poll", count, self.stats.pages - pages, began, skipped)
        return count

    async def _quarantine_error(self, exc: Exception) -> None:
        """Record a source's data failure once per cursor and reason (it repeats each retry)."""
        reason = f"{type(exc).__name__}: {exc}"[:500]
        position = "cursor " + json.dumps(self.stats.cursor, sort_keys=True, default=str)[:200]
        if self._quarantined == (position, reason):
            return
        self._quarantined = (position, reason)
        now_ms = int(self.clock() * 1000)
        await self.db.run(
            self.db.transaction(
                lambda conn: quarantine.put(
                    conn, self.connector, "record", position, reason, now_ms=now_ms
                )
            )
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``interval`` until ``stop``; transient errors wait and retry."""
        failures = 0
        while not stop.is_set():
            wait = self.interval
            try:
                await self.poll_once()
                failures = 0
            except FatalError:
                raise
            except RateLimited as exc:
                wait = max(wait, self.backoff.delay(1, exc.retry_after))
                self.stats.last_error = f"rate limited: {exc}"
            except (RetriableError, SkippableError, OSError) as exc:
                never_read = not self.stats.last_ok_ms and not self.stats.backfilled
                if never_read and not isinstance(exc, SkippableError):
                    # never read at all: a wrong URL or a CRM that is down is the operator's
                    # to fix (crm-pulse doctor); once running, outages are waited out. Bad
                    # data (a SkippableError) is quarantined below and never stops the runtime.
                    raise FatalError(f"{self.connector}: {exc}") from None
                failures += 1
                wait = max(self.interval, self.backoff.delay(failures))
                self.stats.last_error = str(exc)[:500]
                log.warning(
                    "poll failed; will retry",
                    extra={"connector": self.connector, "reason": str(exc), "retry_in": wait},
                )
                if isinstance(exc, SkippableError):
                    await self._quarantine_error(exc)
            except Exception as exc:
                # a source failing on bad data (a plugin building an invalid event, a record
                # its mapping does not expect): never stop, quarantine, retry with backoff
                failures += 1
                wait = max(self.interval, self.backoff.delay(failures))
                reason = f"{type(exc).__name__}: {exc}"[:500]
                self.stats.last_error = reason
                log.error(
                    "source failed on bad data; quarantined, will retry",
                    extra={"connector": self.connector, "reason": reason, "retry_in": wait},
                )
                await self._quarantine_error(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)
