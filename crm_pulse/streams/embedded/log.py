"""The event log: every canonical event, appended before anything acknowledges it.

Events are stored as their canonical JSON (metrics-spec section 1), so the log is also a
JSONL export: ``crm-pulse replay`` on it gives the metrics the runtime computed. The consumer
remembers the last position it applied (``meta.consumed``) in the same transaction as the
state it changed.
"""

from __future__ import annotations

import json
import sqlite3
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, TextIO

from pydantic import ValidationError

from ...metrics.decode import decode_event
from ...metrics.events import Event

if TYPE_CHECKING:
    from .database import Database


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
    "RecentEvents",
    "append_events",
    "consumed_position",
    "event_json",
    "export_events",
    "last_position",
    "read_events",
    "read_log",
    "state_position",
]


_dumps = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


def event_json(event: Event) -> str:
    """The event's canonical JSON (sorted keys, no spaces, ASCII), as the log stores it.

    Built from the attributes, not with ``model_dump``: an event's ``fields`` hold JSON values
    only (:func:`~crm_pulse.metrics.events.check_fields` refuses anything else), so the text is
    the same. ``fields`` sort first; when their canonical JSON (computed once per upsert, see
    :attr:`Event.canonical`) is ASCII it is that text, and is not encoded again."""
    rest = _dumps(
        {
            "id": event.id,
            "object": event.object,
            "op": event.op,
            "source": event.source,
            "version": event.version,
        }
    )
    fields = event.canonical
    if not fields.isascii():
        fields = _dumps(event.fields)
    return '{"fields":' + fields + "," + rest[1:]


class RecentEvents:
    """Events this process appended to the log, by position, from the moment their append
    committed until the consumer takes them, so that an event is parsed once per process.

    Everything runs on the database thread: :meth:`stage` inside the appending transaction
    (the events are added after its COMMIT, through :meth:`Database.after_commit`),
    :meth:`take` and :meth:`pop` in the consumer's. Positions only grow, so the events are
    kept in log order and taken from the front. At most ``limit`` events are held; an event
    appended beyond that is read back from the log (parsed) like after a restart.
    """

    def __init__(self, db: Database, limit: int = 20_000) -> None:
        self.db = db
        self.limit = limit
        self._events: deque[tuple[int, Event]] = deque()

    def __len__(self) -> int:
        return len(self._events)

    def stage(self, conn: sqlite3.Connection, count: int, events: Sequence[Event]) -> None:
        """The last ``count`` rows this connection inserted hold ``events`` (same order)."""
        last = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])
        first = last - count + 1
        self.db.after_commit(lambda: self._add(first, events))

    def _add(self, first: int, events: Sequence[Event]) -> None:
        room = self.limit - len(self._events)
        if room <= 0:
            return
        if self._events and self._events[-1][0] >= first:  # pragma: no cover - positions grow
            self._events.clear()
        self._events.extend(zip(range(first, first + room), events, strict=False))

    def take(self, after: int, limit: int) -> list[tuple[int, Event]]:
        """Up to ``limit`` events at positions ``after + 1``, ``after + 2``, ... without a gap
        (empty when the next position is not held: the log has what this process did not
        append, or what it appended beyond ``limit``)."""
        events = self._events
        while events and events[0][0] <= after:
            events.popleft()
        out: list[tuple[int, Event]] = []
        expected = after + 1
        while events and len(out) < limit and events[0][0] == expected:
            out.append(events.popleft())
            expected += 1
        return out

    def pop(self, position: int) -> Event | None:
        """The event at ``position`` if held (and everything before it is dropped)."""
        events = self._events
        while events and events[0][0] < position:
            events.popleft()
        if events and events[0][0] == position:
            return events.popleft()[1]
        return None


def append_events(
    conn: sqlite3.Connection,
    connector: str,
    events: Sequence[Event],
    received_ms: int,
    recent: RecentEvents | None = None,
) -> int:
    """Append in the caller's transaction; returns how many. With ``recent`` (a transaction
    of :meth:`Database.transaction`), the events are handed to the consumer once committed."""
    conn.executemany(
        "INSERT INTO events (connector, received_ms, body) VALUES (?, ?, ?)",
        [(connector, received_ms, event_json(e)) for e in events],
    )
    if recent is not None and events:
        recent.stage(conn, len(events), events)
    return len(events)


def read_events(conn: sqlite3.Connection, after: int, limit: int) -> list[tuple[int, Event]]:
    """Up to ``limit`` valid events after position ``after``, in log order (bad entries are
    left out; :func:`read_log` reports them)."""
    return read_log(conn, after, limit)[0]


def read_log(
    conn: sqlite3.Connection, after: int, limit: int, recent: RecentEvents | None = None
) -> tuple[list[tuple[int, Event]], list[BadEntry]]:
    """Up to ``limit`` entries after position ``after``, in log order: the valid events, and
    the entries that are not valid events (with the reason). With ``recent``, the events this
    process appended are taken from it instead of being read and parsed again."""
    good: list[tuple[int, Event]] = []
    bad: list[BadEntry] = []
    if recent is not None:
        good = recent.take(after, limit)
        if len(good) == limit:
            return good, bad
        if good:
            after, limit = good[-1][0], limit - len(good)
    rows = conn.execute(
        "SELECT position, connector, body FROM events WHERE position > ? ORDER BY position LIMIT ?",
        (after, limit),
    ).fetchall()
    for pos, connector, body in rows:
        if recent is not None:
            held = recent.pop(pos)
            if held is not None:
                good.append((int(pos), held))
                continue
        try:
            good.append((int(pos), decode_event(body)))
        except ValidationError as exc:
            bad.append(BadEntry(int(pos), str(connector), str(body), _reason(exc)))
        except ValueError as exc:
            bad.append(BadEntry(int(pos), str(connector), str(body), f"not JSON: {exc}"[:300]))
    return good, bad


def consumed_position(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE name = 'consumed'").fetchone()
    return 0 if row is None else int(row[0])


def state_position(conn: sqlite3.Connection) -> int:
    """The log position the engine state in the file reflects (its last checkpoint): the
    consumed position in a file whose state was written with every batch."""
    row = conn.execute("SELECT value FROM meta WHERE name = 'state_at'").fetchone()
    return consumed_position(conn) if row is None else int(row[0])


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
