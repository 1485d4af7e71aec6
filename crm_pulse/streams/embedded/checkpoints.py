"""State checkpoints: the engine state is written to the file now and then, not with every batch.

Every batch commits, in one transaction, its events' consumed position, its planned writes (the
outbox) and the quarantine; the engine state it built stays in memory. A **checkpoint** writes
every state entry changed since the last one, the group index's rows, the engine's horizon and
meta ``state_at`` (the log position that state reflects), in the transaction of a batch or a
tick, so what the file holds is always the state of the log up to ``state_at``.

A start loads that state and **re-applies the log** from ``state_at`` to the consumed position
(:func:`catch_up`), skipping what the quarantine holds, exactly as those batches did; it plans
nothing, because those batches' writes are already in the outbox (durable with their position),
and it drains the engine's changes so the next batch compares with the values as of now. The
engine's result depends only on which events it saw, not on their order nor on how they were
batched (tests/test_property.py), so the state after the catch-up is the state the crashed
process had. A kill -9 anywhere therefore loses nothing and counts nothing twice, as before.

Why (issue 17, item 8): written with every batch, the state cost grew with its size. A batch
of 5,000 events changed ~89,000 entries spread over the whole table, so it rewrote about a page
per entry once the table outgrew SQLite's cache, and the entries that hold a day's or a month's
records (percentiles, distinct sets, the exact times of a rolling window) were pickled again
whole by every batch: at 10^6 records the last quarter of a load cost 1.42 times the first.
A checkpoint writes each changed entry once however many batches changed it, and while the
consumer has a backlog it comes once ``events`` were applied since the last one *and* at least a
quarter of every event applied so far (:class:`Policy`): the checkpoints of a load are a
geometric series, so their total cost is a few times the final state's size, a constant per
event. Once the consumer has caught up, a checkpoint comes ``interval`` after the last one (the
file ``crm-pulse report`` reads is at most that far behind a running runtime; "caught up" is
seen by a batch that found no new event, or by a tick with no backlog, so a consumer that keeps
up with a steady stream checkpoints at its ticks), and at every clean stop.

A file written by an earlier crm-pulse has no ``state_at``: its state is at its consumed
position (:func:`~.log.state_position`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass

from ...metrics.collector import collector_paused
from ...metrics.engine import Engine
from . import quarantine
from .database import Database
from .log import consumed_position, event_json, read_log, state_position
from .state import SQLiteStore

__all__ = [
    "Done",
    "Failed",
    "Policy",
    "apply_log",
    "catch_up",
    "events_after_checkpoint",
    "write_checkpoint",
]

CATCH_UP_CHUNK = 10_000
"""Log entries read at a time while re-applying the log after the last checkpoint."""


@dataclass(frozen=True)
class Policy:
    """When a checkpoint is due (``runtime.checkpoint``)."""

    events: int = 1
    """While there is a backlog: at least this many events since the last checkpoint (1: a
    checkpoint with every batch, the behaviour of a runtime built without settings)."""
    interval: float = 0.0
    """Once caught up and idle (a batch that found no event, or a tick): seconds since the
    last checkpoint."""
    share: int = 0
    """... and at least 1/``share`` of every event applied so far (a geometric series; the
    runtime's is 4; 0: no such rule)."""

    def due(
        self,
        *,
        since: int,
        applied_total: int,
        backlog: int,
        idle: bool,
        idle_for: float,
        dirty: int,
    ) -> bool:
        """``since``: log positions moved since the last checkpoint; ``applied_total``: events
        the consumer took since the log began; ``idle``: the consumer found nothing new (a
        batch of no event, or a tick); ``idle_for``: seconds since the last checkpoint;
        ``dirty``: state entries changed since it."""
        if since <= 0 and not dirty:
            return False
        if since >= max(self.events, applied_total // self.share if self.share else 0):
            return True
        return idle and backlog == 0 and idle_for >= self.interval


def write_checkpoint(
    conn: sqlite3.Connection, store: SQLiteStore, engine: Engine, position: int
) -> int:
    """Write the state changed since the last checkpoint as the state of the log up to
    ``position`` (in the caller's transaction); returns the entries written."""
    if engine.horizon is not None:
        Database.set_meta(conn, "horizon", str(engine.horizon))
    Database.set_meta(conn, "state_at", str(position))  # before the index marks its position
    return store.flush(conn)


def events_after_checkpoint(path: str) -> int:
    """Log positions the state file's consumed position is ahead of its state (0: the state
    in the file is current; read only). A reader of the state (``report``, ``explain``) that
    finds the file behind loads it whole and re-applies the log, as a start does."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return 0
    try:
        return consumed_position(conn) - state_position(conn)
    except (sqlite3.Error, ValueError):  # a damaged file: its readers say how
        return 0
    finally:
        conn.close()


@dataclass(frozen=True)
class Done:
    """One checkpoint, as ``/status`` shows it (``checkpoints``)."""

    after: int
    """The log position of the previous checkpoint: this one holds the events after it."""
    position: int
    entries: int
    """State entries written (changed since the previous checkpoint)."""
    cpu_s: float
    """CPU seconds of the database thread writing it (not counting its commit)."""
    at_ms: int

    def to_json(self) -> dict[str, int | float]:
        return {
            "after": self.after,
            "position": self.position,
            "entries": self.entries,
            "cpu_s": round(self.cpu_s, 3),
            "at_ms": self.at_ms,
        }


@dataclass(frozen=True)
class Failed:
    """An event the engine failed on while the log was re-applied."""

    position: int
    connector: str
    body: str
    reason: str


def catch_up(
    conn: sqlite3.Connection, engine: Engine, after: int, upto: int, as_of: int
) -> tuple[int, Failed | None]:
    """Re-apply the log's events after ``after`` up to ``upto`` (the consumed position) to
    ``engine``, leaving out the quarantined positions, as their batches did; returns the events
    that moved the engine, and the first one the engine failed on (then the engine's state is
    not to be used: reload it). Plans nothing: see the module docstring."""
    engine.advance(as_of)
    return apply_log(conn, engine, after, upto, quarantine.event_positions(conn, after))


def apply_log(
    conn: sqlite3.Connection, engine: Engine, after: int, upto: int, skip: Collection[int]
) -> tuple[int, Failed | None]:
    """Apply the log's valid events after ``after`` up to ``upto`` to ``engine``, without the
    positions in ``skip``, with the collector paused (the state built is never garbage);
    returns how many moved the engine, and the first event it failed on (then stops)."""
    position, applied = after, 0
    with collector_paused():
        while position < upto:
            good, bad = read_log(conn, position, CATCH_UP_CHUNK)
            if not good and not bad:
                break
            for pos, event in good:
                if pos > upto:
                    break
                if pos in skip:
                    continue
                try:
                    if engine.apply_counted(event) is not None:
                        applied += 1
                except Exception as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                    return applied, Failed(pos, event.source, event_json(event), reason)
            position = max([p for p, _ in good[-1:]] + [b.position for b in bad[-1:]])
    return applied, None
