"""What the state file keeps: event-log compaction and the last reported values.

**The event log** (``runtime.event_log``). With ``keep: latest`` (the default) the consumed
part of the log is compacted to the event that decides each record's final state (the newest
version; at equal versions a delete, then the greater canonical JSON: :func:`.supersedes`);
every older or superseded event of the record is deleted. Because the engine's result depends
only on each record's final state, whatever the order, duplication or deletions that led to it,
``crm-pulse events export | crm-pulse replay`` still gives exactly the runtime's report after a
compaction. Objects a stage-history measure reads (``stays``: time in stage) depend on every
version, not on the final one only: for them the log keeps what the engine's stage history
keeps, one upsert per version newer than the newest delete (at equal versions the greater
canonical JSON) and that delete; re-reads of a version and what a delete erased go. Never
deleted: events not yet consumed, log entries that are not valid events, quarantined
positions, and the newest entry (the log's end position never moves back).

A compaction starts when the consumer has moved ``compact_every`` events past the last one, and
at least as many events as the last one kept, so its cost (one pass over the consumed log) is
spread over that many events. ``keep: all`` never deletes an event.

**The last reported values** (state entries ``("o", metric, group, window)``): the engine keeps
them only for what the write-back rules read; entries a file holds for anything else (written
by an older version that kept every metric, or by rules since removed) are dropped when the
state is loaded.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from ...metrics.catalog import Catalog
from ...metrics.events import canonical_json, supersedes
from ...metrics.state import StateStore
from . import quarantine
from .database import Database
from .log import consumed_position, last_position

__all__ = ["Compaction", "compact_log", "compaction_due", "prune_reported"]

log = logging.getLogger("crm_pulse.retention")

_CHUNK = 20_000


@dataclass(frozen=True)
class Compaction:
    scanned: int
    deleted: int
    kept: int
    position: int


class _Entry(NamedTuple):
    """What compaction reads of a logged event (validated when it was appended)."""

    source: str
    object: str
    id: str
    op: str
    version: int
    fields: Any

    @property
    def canonical(self) -> str:
        return canonical_json(self.fields or {})


def _entry(body: str) -> _Entry | None:
    """The event's identity and order; None for anything but a well-formed event (left
    alone: the consumer quarantined it)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if type(data) is not dict:
        return None
    entry = _Entry(
        data.get("source"),  # type: ignore[arg-type]
        data.get("object"),  # type: ignore[arg-type]
        data.get("id"),  # type: ignore[arg-type]
        data.get("op"),  # type: ignore[arg-type]
        data.get("version"),  # type: ignore[arg-type]
        data.get("fields"),
    )
    if (
        type(entry.source) is not str
        or type(entry.object) is not str
        or type(entry.id) is not str
        or entry.op not in ("upsert", "delete")
        or type(entry.version) is not int
    ):
        return None
    return entry


def _tie(conn: sqlite3.Connection, position: int) -> str | None:
    row = conn.execute("SELECT body FROM events WHERE position = ?", (position,)).fetchone()
    entry = None if row is None else _entry(str(row[0]))
    return None if entry is None or entry.op != "upsert" else entry.canonical


class _History:
    """What a record's stage history needs of its events (see ``history_after`` in
    :mod:`crm_pulse.metrics.plans`): the newest delete, and per newer version its winning
    upsert."""

    __slots__ = ("delete", "versions")

    def __init__(self) -> None:
        self.delete: tuple[int, int] | None = None  # (position, version)
        self.versions: dict[int, int] = {}  # version -> position of its winning upsert

    def add(
        self, conn: sqlite3.Connection, position: int, event: _Entry, losers: list[int]
    ) -> None:
        version = event.version
        if event.op == "delete":
            if self.delete is not None and version <= self.delete[1]:
                losers.append(position)
                return
            if self.delete is not None:
                losers.append(self.delete[0])
            self.delete = (position, version)
            for v in [v for v in self.versions if v <= version]:
                losers.append(self.versions.pop(v))
            return
        if self.delete is not None and version <= self.delete[1]:
            losers.append(position)
            return
        old = self.versions.get(version)
        if old is None:
            self.versions[version] = position
            return
        old_tie = _tie(conn, old)
        if old_tie is None or event.canonical > old_tie:
            self.versions[version] = position
            losers.append(old)
        else:
            losers.append(position)


def compact_log(conn: sqlite3.Connection, catalog: Catalog) -> Compaction:
    """Delete the consumed events that no longer decide a record's state (in the caller's
    transaction); see the module docstring for what is kept."""
    consumed = consumed_position(conn)
    end = last_position(conn)
    history_objects = set(catalog.stays)
    skip = quarantine.event_positions(conn, 0)
    # record -> (position, version, deleted) of the event that decides its state so far
    winners: dict[str, tuple[int, int, bool]] = {}
    histories: dict[str, _History] = {}  # records of objects with a stage history
    losers: list[int] = []
    position = scanned = 0
    while True:
        rows = conn.execute(
            "SELECT position, body FROM events WHERE position > ? AND position <= ? "
            "ORDER BY position LIMIT ?",
            (position, consumed, _CHUNK),
        ).fetchall()
        if not rows:
            break
        for pos, body in rows:
            position = int(pos)
            scanned += 1
            if position in skip:
                continue
            event = _entry(str(body))
            if event is None:
                continue
            key = f"{event.source}\x00{event.object}\x00{event.id}"
            if event.object in history_objects:
                histories.setdefault(key, _History()).add(conn, position, event, losers)
                continue
            deleted = event.op == "delete"
            old = winners.get(key)
            if old is None:
                winners[key] = (position, event.version, deleted)
                continue
            old_pos, old_version, old_deleted = old
            tie = old_tie = None
            if event.version == old_version and not deleted and not old_deleted:
                tie, old_tie = event.canonical, _tie(conn, old_pos)
            if supersedes(event.version, event.op, tie, old_version, old_deleted, old_tie):
                winners[key] = (position, event.version, deleted)
                losers.append(old_pos)
            else:
                losers.append(position)
    doomed = [(p,) for p in losers if p != end]
    for i in range(0, len(doomed), _CHUNK):
        conn.executemany("DELETE FROM events WHERE position = ?", doomed[i : i + _CHUNK])
    kept = scanned - len(doomed)
    Database.set_meta(conn, "compacted_position", str(consumed))
    Database.set_meta(conn, "compacted_kept", str(kept))
    return Compaction(scanned, len(doomed), kept, consumed)


def compaction_due(conn: sqlite3.Connection, every: int) -> bool:
    """Whether the consumer moved ``every`` events, and as many as the last compaction kept,
    past the last compaction (positions: a cheap upper bound of the events in between)."""
    row = dict(
        conn.execute(
            "SELECT name, value FROM meta WHERE name IN ('compacted_position', 'compacted_kept')"
        ).fetchall()
    )
    since = consumed_position(conn) - int(row.get("compacted_position", 0))
    return since >= max(every, int(row.get("compacted_kept", 0)))


def prune_reported(store: StateStore, wanted: Mapping[str, Collection[tuple[str, ...]]]) -> int:
    """Drop the last reported values (``"o"`` entries) of what no write-back rule reads;
    returns how many (they are deleted from the file with the next flush)."""
    doomed: list[Any] = []
    for key, _value in store.items():
        if key[0] != "o":
            continue
        _tag, metric, group, _window = key
        if tuple(group[0::2]) not in wanted.get(metric, ()):
            doomed.append(key)
    for key in doomed:
        store.delete(key)
    if doomed:
        log.info("dropped %d last reported value(s) no write-back rule reads", len(doomed))
    return len(doomed)
