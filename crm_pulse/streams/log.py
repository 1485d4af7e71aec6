"""The event log: every canonical event, appended before anything acknowledges it.

Events are stored as their canonical JSON (metrics-spec section 1), so the log is also a
JSONL export: ``crm-pulse replay`` on it gives the metrics the runtime computed. The consumer
remembers the last position it applied (``meta.consumed``) in the same transaction as the
state it changed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import TextIO

from ..metrics.events import Event

__all__ = [
    "append_events",
    "consumed_position",
    "event_json",
    "export_events",
    "last_position",
    "read_events",
]


def event_json(event: Event) -> str:
    return json.dumps(
        event.model_dump(
            mode="json", include={"source", "object", "id", "op", "version", "fields"}
        ),
        separators=(",", ":"),
        sort_keys=True,
    )


def append_events(
    conn: sqlite3.Connection, connector: str, events: Sequence[Event], received_ms: int
) -> int:
    """Append in the caller's transaction; returns how many."""
    conn.executemany(
        "INSERT INTO events (connector, received_ms, body) VALUES (?, ?, ?)",
        [(connector, received_ms, event_json(e)) for e in events],
    )
    return len(events)


def read_events(conn: sqlite3.Connection, after: int, limit: int) -> list[tuple[int, Event]]:
    """Up to ``limit`` events after position ``after``, in log order."""
    rows = conn.execute(
        "SELECT position, body FROM events WHERE position > ? ORDER BY position LIMIT ?",
        (after, limit),
    ).fetchall()
    return [(int(pos), Event.model_validate_json(body)) for pos, body in rows]


def consumed_position(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE name = 'consumed'").fetchone()
    return 0 if row is None else int(row[0])


def last_position(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(position) FROM events").fetchone()
    return int(row[0] or 0)


def export_events(conn: sqlite3.Connection, out: TextIO, *, chunk: int = 10_000) -> int:
    """Write the whole log as canonical JSONL, in log order (what ``crm-pulse replay`` reads);
    returns how many events."""
    position, count = 0, 0
    while True:
        rows = conn.execute(
            "SELECT position, body FROM events WHERE position > ? ORDER BY position LIMIT ?",
            (position, chunk),
        ).fetchall()
        if not rows:
            return count
        out.writelines(f"{body}\n" for _, body in rows)
        position, count = int(rows[-1][0]), count + len(rows)
