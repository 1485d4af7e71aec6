"""The embedded runtime's one SQLite file: event log, inbox, engine state, cursors, outbox.

Everything that must change together lives in one database so that one transaction covers it
(architecture invariant 4). The file runs in WAL mode with ``synchronous=FULL``: a commit that
returned survives a crash of the process *and* of the machine, which is what "durable before
the 2xx" promises.

All access goes through :class:`Database`, which owns the connection and runs every call on one
dedicated thread: sqlite3 calls block, and the event loop must never wait on disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

__all__ = ["SCHEMA_VERSION", "Database"]

T = TypeVar("T")

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- every event received or polled, in arrival order; "position" is its place in the log
CREATE TABLE IF NOT EXISTS events (
    position    INTEGER PRIMARY KEY AUTOINCREMENT,
    connector   TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    body        TEXT NOT NULL
);
-- webhook requests stored before their 2xx; parsed into events afterwards
CREATE TABLE IF NOT EXISTS inbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    connector   TEXT NOT NULL,
    method      TEXT NOT NULL,
    url         TEXT NOT NULL,
    headers     TEXT NOT NULL,
    body        BLOB NOT NULL,
    received_ms INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    due_ms      INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT
);
-- the engine's key-value state (crm_pulse.metrics.state.StateStore)
CREATE TABLE IF NOT EXISTS state (
    k     TEXT PRIMARY KEY,
    key   BLOB NOT NULL,
    value BLOB NOT NULL
) WITHOUT ROWID;
-- each source's position (JSON)
CREATE TABLE IF NOT EXISTS cursors (
    connector  TEXT NOT NULL,
    mode       TEXT NOT NULL,
    cursor     TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (connector, mode)
);
-- field values waiting to be written; the newest value replaces an unsent older one
CREATE TABLE IF NOT EXISTS outbox (
    connector  TEXT NOT NULL,
    object     TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    field      TEXT NOT NULL,
    value      TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    due        REAL NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (connector, object, record_id, field)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (connector, due);
-- the value last written to each field (nothing is sent again while it is unchanged)
CREATE TABLE IF NOT EXISTS written (
    connector  TEXT NOT NULL,
    object     TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    field      TEXT NOT NULL,
    value      TEXT NOT NULL,
    written_ms INTEGER NOT NULL,
    PRIMARY KEY (connector, object, record_id, field)
);
-- writes that kept failing, or failed for a reason retrying cannot fix
CREATE TABLE IF NOT EXISTS dead_letters (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    connector TEXT NOT NULL,
    object    TEXT NOT NULL,
    record_id TEXT NOT NULL,
    field     TEXT NOT NULL,
    value     TEXT NOT NULL,
    reason    TEXT NOT NULL,
    attempts  INTEGER NOT NULL,
    failed_ms INTEGER NOT NULL
);
"""


class Database:
    """One SQLite connection, used from one thread; async callers await :meth:`run`."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crm-pulse-db")
        self._conn: sqlite3.Connection | None = None
        self.call(self._open)

    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(_SCHEMA)
        conn.execute(
            "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        self._conn = conn

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection; only for code already running on the database thread."""
        assert self._conn is not None, "the database is closed"
        return self._conn

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the database thread and wait (for start-up and tools, not the loop)."""
        return self._executor.submit(fn).result()

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the database thread without blocking the event loop."""
        return await asyncio.wrap_future(self._executor.submit(fn))

    def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> Callable[[], T]:
        """Wrap ``fn`` so that it runs in one IMMEDIATE transaction (all or nothing)."""

        def run() -> T:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return run

    def get_meta(self, name: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def set_meta(conn: sqlite3.Connection, name: str, value: str) -> None:
        conn.execute(
            "INSERT INTO meta (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        self.call(close)
        self._executor.shutdown(wait=True)
