"""Quarantine: what failed after it was acknowledged, kept with its reason; the pipeline goes on.

Anything the runtime accepted (a stored webhook request, an event in the log, a source's record)
and then could not use -- it does not parse, is not a valid canonical event, cannot be mapped,
or the engine fails on it -- is moved here in the same transaction that moves past it. Nothing
is lost and nothing stops: ``/status``, the status page and ``/metrics`` show the count, and
``crm-pulse quarantine list|show|retry|drop`` manages the entries.

Each entry records its ``connector``, the ``stage`` it failed at (:data:`STAGES`), its
``position`` there (inbox id, log position, source cursor), the ``reason`` and a short redacted
``excerpt``. Entries of the ``request`` and ``event`` stages also keep what a retry needs: the
request as it was stored (without credentials: see :mod:`.inbox`) or the event's JSON. ``retry``
puts them back (into the inbox, or at the end of the log) so that a fixed configuration or a
newer version gets another go; a ``record`` entry is re-read by its source when the record
changes, so it can only be dropped.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ...connectors.protocols import BadRecord

__all__ = [
    "EXCERPT_CHARS",
    "STAGES",
    "Entry",
    "count",
    "drop",
    "entries",
    "excerpt_of",
    "get",
    "put",
    "put_bad_records",
    "retry",
    "run_command",
    "show_entries",
]

STAGES = ("request", "event", "record")
"""request: a stored webhook request that did not parse; event: an event of the log that is not
valid or that the engine failed on; record: a source's record that could not be mapped."""

EXCERPT_CHARS = 240

SCHEMA = """
CREATE TABLE IF NOT EXISTS quarantine (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    connector  TEXT NOT NULL,
    stage      TEXT NOT NULL,
    position   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    excerpt    TEXT NOT NULL,
    payload    BLOB,
    request    TEXT,
    created_ms INTEGER NOT NULL,
    retries    INTEGER NOT NULL DEFAULT 0
);
"""

_SECRETS = re.compile(
    r"""(?ix)
    ( (?:["']?)(?:[a-z0-9_-]*(?:password|passwd|secret|token|api[_-]?key|authorization|
        signature|credential|session)[a-z0-9_-]*)(?:["']?)\s*[:=>]\s*["']? )
    ( [^"'&\s<,}]+ )
    """
)


def excerpt_of(data: bytes | str | None, limit: int = EXCERPT_CHARS) -> str:
    """A short printable excerpt with anything that looks like a credential replaced by ***."""
    if data is None:
        return ""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = text[: limit * 4]
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates as \ud800
    text = _SECRETS.sub(lambda m: f"{m.group(1)}***", text)
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Entry:
    id: int
    connector: str
    stage: str
    position: str
    reason: str
    excerpt: str
    created_ms: int
    retries: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def put(
    conn: sqlite3.Connection,
    connector: str,
    stage: str,
    position: str,
    reason: str,
    *,
    payload: bytes | str | None = None,
    request: dict[str, Any] | None = None,
    now_ms: int,
) -> int:
    """Quarantine one item (in the caller's transaction); returns its id."""
    assert stage in STAGES, stage
    body = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    cur = conn.execute(
        "INSERT INTO quarantine (connector, stage, position, reason, excerpt, payload, request, "
        "created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            connector,
            stage,
            position,
            excerpt_of(reason, 500),
            excerpt_of(payload),
            body,
            json.dumps(request) if request is not None else None,
            now_ms,
        ),
    )
    return int(cur.lastrowid or 0)


def put_bad_records(
    conn: sqlite3.Connection,
    connector: str,
    records: Sequence[BadRecord],
    now_ms: int,
    *,
    position: str = "",
) -> None:
    """Quarantine the records a source skipped (or a receiver rejected), in the caller's
    transaction: the :data:`~crm_pulse.streams.embedded.pollers.Quarantine` hook of the runtime."""
    for bad in records:
        where = f"{bad.object} {bad.id}".strip()
        if bad.where:
            where += f" ({bad.where})"
        put(
            conn,
            connector,
            "record",
            f"{position}: {where}" if position else where,
            bad.reason,
            now_ms=now_ms,
        )


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0])


_COLUMNS = "id, connector, stage, position, reason, excerpt, created_ms, retries"


def entries(conn: sqlite3.Connection, limit: int = 100) -> list[Entry]:
    """The newest entries first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM quarantine ORDER BY id DESC LIMIT ?", (limit,)
    ).fetchall()
    return [Entry(*row) for row in rows]


def get(conn: sqlite3.Connection, entry_id: int) -> Entry | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM quarantine WHERE id = ?", (entry_id,)).fetchone()
    return None if row is None else Entry(*row)


def event_positions(conn: sqlite3.Connection, after: int) -> set[int]:
    """Log positions after ``after`` already quarantined (the consumer skips them)."""
    rows = conn.execute("SELECT position FROM quarantine WHERE stage = 'event'").fetchall()
    out = set()
    for (position,) in rows:
        if str(position).isdigit() and int(position) > after:
            out.add(int(position))
    return out


def drop(conn: sqlite3.Connection, ids: Sequence[int] | None) -> int:
    """Delete entries (``None``: all); returns how many."""
    if ids is None:
        return int(conn.execute("DELETE FROM quarantine").rowcount)
    return sum(int(conn.execute("DELETE FROM quarantine WHERE id = ?", (i,)).rowcount) for i in ids)


def retry(conn: sqlite3.Connection, entry_id: int, now_ms: int) -> str:
    """Put an entry back where it failed (in the caller's transaction); says what was done.

    Raises ``LookupError`` for an unknown id and ``ValueError`` for an entry that cannot be
    retried (a source's record: its source reads it again when it changes)."""
    row = conn.execute(
        "SELECT connector, stage, payload, request FROM quarantine WHERE id = ?", (entry_id,)
    ).fetchone()
    if row is None:
        raise LookupError(f"no quarantine entry {entry_id}")
    connector, stage, payload, request = row
    if stage == "request" and payload is not None and request:
        meta = json.loads(request)
        conn.execute(
            "INSERT INTO inbox (connector, method, url, headers, body, received_ms) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                connector,
                str(meta.get("method", "POST")),
                str(meta.get("url", "")),
                json.dumps(meta.get("headers") or {}),
                bytes(payload),
                int(meta.get("received_ms") or now_ms),
            ),
        )
        what = "request put back into the inbox"
    elif stage == "event" and payload is not None:
        conn.execute(
            "INSERT INTO events (connector, received_ms, body) VALUES (?, ?, ?)",
            (connector, now_ms, bytes(payload).decode("utf-8", "surrogatepass")),
        )
        what = "event appended to the log again"
    else:
        raise ValueError(
            f"entry {entry_id} ({stage}) cannot be retried here: its source reads the record "
            "again when it changes; drop it once fixed"
        )
    conn.execute("DELETE FROM quarantine WHERE id = ?", (entry_id,))
    return what


def show_entries(items: Sequence[Entry], out: TextIO, *, full: bool = False) -> None:
    """Print entries for people: one line each, or every field (``full``)."""
    if not items:
        out.write("quarantine is empty\n")
        return
    for e in items:
        if full:
            for key, value in e.as_dict().items():
                out.write(f"{key}: {value}\n")
            out.write("\n")
        else:
            out.write(
                f"{e.id:>6}  {e.connector:<12} {e.stage:<8} at {e.position:<14} {e.reason[:90]}\n"
            )


def run_command(
    state_path: str,
    action: str,
    ids: Sequence[int],
    *,
    all_entries: bool,
    out: TextIO,
    now_ms: int,
) -> int:
    """``crm-pulse quarantine list|show|retry|drop``; returns the exit code."""
    from .database import Database

    db = Database(state_path, create=False)
    try:
        if action == "list":
            items = db.call(lambda: entries(db.conn, 1000))
            show_entries(items, out)
            total = db.call(lambda: count(db.conn))
            out.write(f"{total} quarantined\n")
            return 0
        if not ids and not all_entries:
            out.write(f"quarantine {action}: name entry ids, or --all\n")
            return 2
        if action == "show":
            chosen = db.call(lambda: [get(db.conn, i) for i in ids] if ids else entries(db.conn))
            missing = [i for i, e in zip(ids, chosen, strict=False) if e is None]
            show_entries([e for e in chosen if e is not None], out, full=True)
            if missing:
                out.write(f"no quarantine entry {', '.join(map(str, missing))}\n")
                return 1
            return 0
        if action == "drop":
            n = db.call(db.transaction(lambda c: drop(c, list(ids) if ids else None)))
            out.write(f"dropped {n} entr{'y' if n == 1 else 'ies'}\n")
            return 0
        targets = list(ids) or [e.id for e in db.call(lambda: entries(db.conn, 100_000))]
        failed = 0
        for entry_id in sorted(targets):

            def one(c: sqlite3.Connection, entry_id: int = entry_id) -> str:
                return retry(c, entry_id, now_ms)

            try:
                what = db.call(db.transaction(one))
            except (LookupError, ValueError) as exc:
                out.write(f"{entry_id}: {exc}\n")
                failed += 1
                continue
            out.write(f"{entry_id}: {what}\n")
        out.write("the runtime takes retried entries at its next start or within a second\n")
        return 1 if failed else 0
    finally:
        db.close()
