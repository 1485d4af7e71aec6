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
from typing import NamedTuple, TextIO

from pydantic import ValidationError

from ...metrics.events import Event


class BadEntry(NamedTuple):
    """A log entry that is not a valid canonical event (written by an older version, or
    edited): it is quarantined and the consumer moves past it."""

    position: int
    connector: str
    body: str
    reason: str


def _reason(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors()[:3]:
        where = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {msg}" if where else msg)
    return "not a valid canonical event: " + "; ".join(problems)


__all__ = [
    "BadEntry",
    "append_events",
    "consumed_position",
    "event_json",
    "export_events",
    "last_position",
    "read_events",
    "read_log",
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
    """Up to ``limit`` valid events after position ``after``, in log order (bad entries are
    left out; :func:`read_log` reports them)."""
    return read_log(conn, after, limit)[0]


def read_log(
    conn: sqlite3.Connection, after: int, limit: int
) -> tuple[list[tuple[int, Event]], list[BadEntry]]:
    """Up to ``limit`` entries after position ``after``, in log order: the valid events, and
    the entries that are not valid events (with the reason)."""
    rows = conn.execute(
        "SELECT position, connector, body FROM events WHERE position > ? ORDER BY position LIMIT ?",
        (after, limit),
    ).fetchall()
    good: list[tuple[int, Event]] = []
    bad: list[BadEntry] = []
    for pos, connector, body in rows:
        try:
            good.append((int(pos), Event.model_validate_json(body)))
        except ValidationError as exc:
            bad.append(BadEntry(int(pos), str(connector), str(body), _reason(exc)))
        except ValueError as exc:
            bad.append(BadEntry(int(pos), str(connector), str(body), f"not JSON: {exc}"[:300]))
    return good, bad


def consumed_position(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE name = 'consumed'").fetchone()
    return 0 if row is None else int(row[0])


def last_position(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(position) FROM events").fetchone()
    return int(row[0] or 0)


def export_events(conn: sqlite3.Connection, out: TextIO, *, chunk: int = 10_000) -> tuple[int, int]:
    """Write the whole log as canonical JSONL, in log order (what ``crm-pulse replay`` reads);
    returns how many events, and how many entries were left out because they are not valid
    events (the runtime quarantines those: they count in no metric, so replay must not see
    them either)."""
    position, count, skipped = 0, 0, 0
    while True:
        good, bad = read_log(conn, position, chunk)
        if not good and not bad:
            return count, skipped
        out.writelines(f"{event_json(event)}\n" for _, event in good)
        position = max([p for p, _ in good[-1:]] + [b.position for b in bad[-1:]])
        count, skipped = count + len(good), skipped + len(bad)
