"""Helpers for connector tests: reading a source's pages, writing through the outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from crm_pulse.connectors.protocols import Cursor, FieldWrite, Page, Sink
from crm_pulse.metrics.events import Event
from crm_pulse.streams.embedded.database import Database
from crm_pulse.streams.writeback import Backoff, SQLiteOutbox, Writer, WriterStats


async def drain(pages: AsyncIterator[Page]) -> tuple[list[Event], Cursor | None]:
    """Every event of every page, and the cursor after the last page."""
    events: list[Event] = []
    cursor: Cursor | None = None
    async for page in pages:
        events.extend(page.events)
        cursor = page.cursor
    return events, cursor


async def write_through_outbox(
    path: Path,
    connector: str,
    sink: Sink,
    writes: Sequence[FieldWrite],
    *,
    step: float,
    rounds: int,
) -> tuple[WriterStats, list[dict[str, object]]]:
    """Put ``writes`` in a fresh outbox and let the shared Writer flush it, moving a test clock
    by ``step`` seconds a round until it is empty (or ``rounds`` pass). Returns the writer's
    statistics and the dead letters."""
    db = Database(path)
    clock = [1000.0]
    try:
        db.call(db.transaction(lambda conn: SQLiteOutbox.put(conn, writes, 0, 0)))
        writer = Writer(
            connector, sink, SQLiteOutbox(db), Backoff(1, 60, 5), clock=lambda: clock[0]
        )
        for _ in range(rounds):
            if not db.call(lambda: SQLiteOutbox.depth(db.conn)):
                break
            await writer.flush()
            clock[0] += step
        return writer.stats, db.call(lambda: SQLiteOutbox.dead_letters(db.conn))
    finally:
        db.close()
