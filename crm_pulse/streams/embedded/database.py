"""The embedded runtime's one SQLite file: event log, inbox, engine state, cursors, outbox.

Everything that must change together lives in one database so that one transaction covers it
(architecture invariant 4). The file runs in WAL mode with ``synchronous=FULL``: a commit that
returned survives a crash of the process *and* of the machine, which is what "durable before
the 2xx" promises.

All access goes through :class:`Database`, which owns the connection and runs every call on one
dedicated thread: sqlite3 calls block, and the event loop must never wait on disk.

The file, its WAL and its shared-memory file are created readable by their owner only (0600);
an existing file is tightened to 0600 when opened. It never holds a credential: the inbox
stores requests without them (see :mod:`.inbox`), and opening a file written by an older
version removes the credentials it stored, once. A file that is not a crm-pulse state file, is
corrupt, or holds values of the wrong type is refused with :class:`StateError` naming the file,
the table and the key: the runtime never runs on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ...errors import FatalError
from . import groups, quarantine

__all__ = ["SCHEMA_VERSION", "Database", "StateError"]

T = TypeVar("T")

SCHEMA_VERSION = 2
"""2: the engine state is written at checkpoints (meta ``state_at``, :mod:`.checkpoints`); a
crm-pulse that writes it with every batch (1) refuses the file rather than move the consumed
position without it."""
CACHE_KIB = 65_536
"""SQLite's page cache for the state file, in KiB (at most; it grows with the file)."""

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
-- a writer's round reads its rows off this index in the order it hands them out (due, then
-- field) instead of sorting every due row each round (40,000 pending writes in rounds of 400:
-- 0.66 -> 0.23 CPU s); it also serves the earliest due time
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (connector, due, object, record_id, field);
DROP INDEX IF EXISTS outbox_due;
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
    failed_ms INTEGER NOT NULL,
    transient INTEGER NOT NULL DEFAULT 0,  -- died of an outage: may come back by itself
    requeues  INTEGER NOT NULL DEFAULT 0
);
-- requests already stored, by a digest of their body and signature headers, until they expire:
-- an exact repeat within the window is answered as a duplicate and not stored again
CREATE TABLE IF NOT EXISTS seen_requests (
    digest     BLOB PRIMARY KEY,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_requests_expiry ON seen_requests (expires_ms);
"""
_SCHEMA += quarantine.SCHEMA
_SCHEMA += groups.SCHEMA

_TABLES = {
    "meta": {"name", "value"},
    "events": {"position", "connector", "received_ms", "body"},
    "inbox": {"id", "connector", "method", "url", "headers", "body", "received_ms"},
    "state": {"k", "key", "value"},
    "cursors": {"connector", "mode", "cursor", "updated_ms"},
    "outbox": {"connector", "object", "record_id", "field", "value", "seq", "due"},
    "written": {"connector", "object", "record_id", "field", "value"},
    "dead_letters": {"id", "connector", "object", "record_id", "field", "value", "reason"},
}
_INTEGER_META = (
    "schema_version",
    "consumed",
    "state_at",
    "applied",
    "consumed_events",
    "forwarded",
    "horizon",
)


class StateError(FatalError):
    """The state file cannot be used as it is; the message names the file, table and key."""

    ADVICE = (
        "The runtime does not run on it: restore a backup, or move the file away to start "
        "from an empty state (then backfill)"
    )

    def __init__(self, path: str, where: str, why: str, advice: str = ADVICE) -> None:
        place = f"{path}: {where}: " if where else f"{path}: "
        super().__init__(f"state file {place}{why}" + (f". {advice}" if advice else ""))


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _migrate(conn: sqlite3.Connection) -> None:
    """Columns added since a file was created."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(dead_letters)")}
    for name in ("transient", "requeues"):
        if name not in columns:
            conn.execute(f"ALTER TABLE dead_letters ADD COLUMN {name} INTEGER NOT NULL DEFAULT 0")


def _upgrade(conn: sqlite3.Connection) -> None:
    """A file of schema 1 held the state of its consumed position (written with every batch);
    a new file holds the state of nothing yet. From schema 2 on ``state_at`` says which."""
    conn.execute(
        "INSERT OR IGNORE INTO meta (name, value) SELECT 'state_at', "
        "coalesce((SELECT value FROM meta WHERE name = 'consumed'), '0')"
    )
    conn.execute(
        "UPDATE meta SET value = ? WHERE name = 'schema_version' AND CAST(value AS INTEGER) < ?",
        (str(SCHEMA_VERSION), SCHEMA_VERSION),
    )


def _private(path: str) -> None:
    """Create ``path`` (and tighten it and its WAL/SHM files) to owner-only access."""
    if not Path(path).exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(name, 0o600)


class Database:
    """One SQLite connection, used from one thread; async callers await :meth:`run`."""

    def __init__(self, path: str | Path, *, create: bool = True, check: bool = True) -> None:
        """Open (``create``: or create) the state file; :class:`StateError` if unusable.
        ``check=False``: the checks that read the whole file (SQLite's integrity check, the
        event log's types) wait for :meth:`check` (a runtime that answers HTTP first)."""
        self.path = str(path)
        self._checked = check
        if not create and self.path != ":memory:" and not Path(self.path).is_file():
            raise StateError(
                self.path,
                "",
                "does not exist (has `crm-pulse run` or `backfill` run with this file?)",
                advice="",
            )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crm-pulse-db")
        self._conn: sqlite3.Connection | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._reader_conn: sqlite3.Connection | None = None
        self._after_commit: list[Callable[[], None]] = []
        try:
            self.call(self._open)
        except BaseException:
            self._executor.shutdown(wait=False)
            raise

    def _open(self) -> None:
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                _private(self.path)
            except OSError as exc:
                raise StateError(self.path, "", f"cannot be opened ({exc.strerror})") from None
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StateError(self.path, "", f"cannot be opened ({exc})") from None
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            # the state table's B-tree pages stay in memory as the state grows (the default
            # 2 MB cache is outgrown at a few 10^4 records, then every batch reads its pages back)
            conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            conn.executescript(_SCHEMA)
            _migrate(conn)
            conn.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            if self._checked:
                self._check_whole(conn)
            self._check(conn)
            _upgrade(conn)
            from .inbox import scrub_credentials

            scrub_credentials(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StateError(self.path, "", f"is not a usable SQLite database ({exc})") from None
        except StateError:
            conn.close()
            raise
        if self.path != ":memory:":
            _private(self.path)  # the WAL and SHM files exist now
        self._conn = conn

    def check(self) -> None:
        """The checks ``check=False`` left out (on the database thread); StateError."""
        if self._checked:
            return
        try:
            self._check_whole(self.conn)
        except sqlite3.DatabaseError as exc:
            raise StateError(self.path, "", f"is not a usable SQLite database ({exc})") from None
        self._checked = True

    def _check_whole(self, conn: sqlite3.Connection) -> None:
        """The checks that read the whole file: SQLite's integrity check, the log's types."""
        result = conn.execute("PRAGMA quick_check").fetchone()
        if result is None or result[0] != "ok":
            raise StateError(self.path, "", f"is corrupt ({result[0] if result else 'no answer'})")
        bad = conn.execute(
            "SELECT position FROM events WHERE typeof(body) != 'text' OR typeof(position) != "
            "'integer' LIMIT 1"
        ).fetchone()
        if bad is not None:
            raise StateError(self.path, f"events, position {bad[0]!r}", "the event is not text")

    def _check(self, conn: sqlite3.Connection) -> None:
        """Refuse a file whose structure or bookkeeping values are not what this version wrote."""
        for table, needed in _TABLES.items():
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            missing = sorted(needed - columns)
            if missing:
                raise StateError(self.path, f"table {table}", f"lacks column(s) {missing}")
        for name in _INTEGER_META:
            row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
            if row is not None and not str(row[0]).lstrip("-").isdigit():
                raise StateError(
                    self.path, f"meta, key {name!r}", f"expected an integer, got {_show(row[0])}"
                )
        version = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        if int(version[0]) > SCHEMA_VERSION:
            raise StateError(
                self.path, "meta, key 'schema_version'", "written by a newer crm-pulse"
            )
        for connector, mode, cursor in conn.execute("SELECT connector, mode, cursor FROM cursors"):
            try:
                value = json.loads(cursor)
            except (TypeError, ValueError):
                value = None
            if not isinstance(value, dict):
                raise StateError(
                    self.path,
                    f"cursors, key ({connector!r}, {mode!r})",
                    f"expected a JSON object, got {_show(cursor)}",
                )
        for table in ("outbox", "written", "dead_letters"):
            for key, value in conn.execute(
                f"SELECT connector || '/' || object || '/' || record_id || '/' || field, value "
                f"FROM {table}"
            ):
                try:
                    number = json.loads(value)
                except (TypeError, ValueError):
                    number = "bad"
                if number is not None and (
                    isinstance(number, bool) or not isinstance(number, int | float)
                ):
                    raise StateError(
                        self.path,
                        f"{table}, key {key!r}",
                        f"expected a number or null, got {_show(value)}",
                    )

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

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on a read-only connection of its own thread: it never waits behind the
        database thread (a state being loaded, a long batch), and sees what was committed
        (WAL readers do not block the writer). For ``:memory:``, on the database thread."""
        if self.path == ":memory:":
            return await self.run(lambda: fn(self.conn))
        if self._reader is None:
            self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crm-pulse-rd")
        return await asyncio.wrap_future(self._reader.submit(lambda: fn(self._read_conn())))

    def _read_conn(self) -> sqlite3.Connection:
        if self._reader_conn is None:
            uri = f"{Path(self.path).resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")
            self._reader_conn = conn
        return self._reader_conn

    def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> Callable[[], T]:
        """Wrap ``fn`` so that it runs in one IMMEDIATE transaction (all or nothing).

        What ``fn`` registered with :meth:`after_commit` runs once the COMMIT returned (and is
        dropped if the transaction rolls back)."""

        def run() -> T:
            conn = self.conn
            self._after_commit.clear()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                self._after_commit.clear()
                conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except BaseException:
                self._after_commit.clear()
                raise
            hooks, self._after_commit = self._after_commit, []
            for hook in hooks:
                hook()
            return result

        return run

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` on the database thread after the current :meth:`transaction` commits
        (for what may only be known in memory once it is durable)."""
        self._after_commit.append(hook)

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
        if self._reader is not None:

            def close_reader() -> None:
                if self._reader_conn is not None:
                    self._reader_conn.close()
                    self._reader_conn = None

            self._reader.submit(close_reader).result()
            self._reader.shutdown(wait=True)
            self._reader = None
