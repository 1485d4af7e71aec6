"""The engine state follows the definitions: rebuilt from the event log when they changed.

The state file keeps, with the engine's state, the fingerprint of the definitions it was built
with (:func:`crm_pulse.metrics.fingerprint.fingerprint`, meta ``definitions``). At start the
consumer compares it with the deployment's: when a metric was added or edited, the time zone
or a window changed, or a crm-pulse upgrade reads more fields or stores its state differently,
the state is rebuilt from the event log -- the path ``crm-pulse replay`` takes, over the events
the consumer had applied (up to ``meta.consumed``) -- in one transaction:

* no field is written while it runs (the outbox gets nothing until the state is whole);
* afterwards, if the first reads are done, every write-back rule's whole value is planned (the
  first-read machinery of the planner) and the outbox keeps only values that differ from what
  was last written to each field;
* an event the engine fails on is quarantined with its reason and left out; an event
  quarantined earlier because the engine failed on it is tried again (the failure may have been
  the mismatch itself) and leaves the quarantine if it applies.

A crash during the rebuild commits nothing: the next start rebuilds again. ``report`` rebuilds
in memory only (it never writes to the file).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...metrics.calendar import WindowSpec
from ...metrics.catalog import Catalog
from ...metrics.engine import Engine
from ...metrics.fingerprint import DefinitionChanges, changes, fingerprint
from ...metrics.groupindex import GroupIndex
from ..writeback import SQLiteOutbox
from . import quarantine
from .checkpoints import apply_log
from .database import Database
from .groups import write_index
from .log import consumed_position
from .state import SQLiteStore

if TYPE_CHECKING:
    from .consumer import Consumer

__all__ = ["META_KEY", "Rebuilt", "ensure_definitions", "rebuild_due"]

log = logging.getLogger("crm_pulse.consumer")

META_KEY = "definitions"
_ENGINE_FAILED = "the engine failed on it: "
_CHUNK = 10_000


@dataclass
class Rebuilt:
    """What a rebuild did."""

    why: DefinitionChanges
    events: int
    applied: int = 0
    quarantined: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    planned: int = 0
    seconds: float = 0.0


def _stored(conn: sqlite3.Connection) -> dict[str, Any] | None:
    row = conn.execute("SELECT value FROM meta WHERE name = ?", (META_KEY,)).fetchone()
    if row is None:
        return None
    try:
        value = json.loads(row[0])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _empty(conn: sqlite3.Connection) -> bool:
    """Nothing applied yet: no consumed position and no engine state."""
    if consumed_position(conn) > 0:
        return False
    return conn.execute("SELECT 1 FROM state LIMIT 1").fetchone() is None


def _engine_failures(conn: sqlite3.Connection, upto: int) -> dict[int, int]:
    """Log position -> quarantine id of events quarantined because the engine failed on them."""
    out: dict[int, int] = {}
    for entry_id, position, reason in conn.execute(
        "SELECT id, position, reason FROM quarantine WHERE stage = 'event'"
    ):
        if (
            str(position).isdigit()
            and int(position) <= upto
            and str(reason).startswith(_ENGINE_FAILED)
        ):
            out[int(position)] = int(entry_id)
    return out


def _replay(
    consumer: Consumer, conn: sqlite3.Connection, upto: int, skip: set[int], as_of: int
) -> tuple[SQLiteStore, Engine, int, tuple[int, str, str, str] | None]:
    """The engine state of the log up to ``upto`` without ``skip``; stops at the first event
    the engine fails on and returns it (position, connector, body, reason)."""
    store = SQLiteStore(GroupIndex(consumer.catalog))
    engine = Engine(consumer.catalog, store, consumer.windows)
    engine.advance(as_of)  # like replay: records dated after now count nowhere yet
    applied, failed = apply_log(conn, engine, 0, upto, skip)
    if failed is None:
        return store, engine, applied, None
    found = (failed.position, failed.connector, failed.body, f"{_ENGINE_FAILED}{failed.reason}")
    return store, engine, applied, found


def _rebuild(consumer: Consumer, conn: sqlite3.Connection, why: DefinitionChanges) -> Rebuilt:
    started = time.monotonic()
    upto = consumed_position(conn)
    count = conn.execute("SELECT COUNT(*) FROM events WHERE position <= ?", (upto,)).fetchone()
    done = Rebuilt(why, int(count[0]))
    log.warning(
        "metric definitions changed since the state was built (%s): "
        "rebuilding the state from the event log, %d events",
        why,
        done.events,
    )
    earlier = _engine_failures(conn, upto)
    skip = quarantine.event_positions(conn, 0) - set(earlier)  # not valid events: still out
    as_of = int(consumer.clock() * 1000)
    while True:
        store, engine, applied, failed = _replay(consumer, conn, upto, skip, as_of)
        if failed is None:
            break
        pos, connector, body, reason = failed
        skip.add(pos)
        done.quarantined.append(pos)
        if pos not in earlier:
            log.error("the engine failed on an event; quarantined", extra={"position": pos})
            quarantine.put(conn, connector, "event", str(pos), reason, payload=body, now_ms=as_of)
    done.applied = applied
    released = [earlier[p] for p in earlier if p not in skip]
    quarantine.drop(conn, released)
    done.released = sorted(p for p in earlier if p not in skip)
    # groups the old state had data for: a field written for one may now need a 0 or a null
    old_groups = {
        key[2]
        for key, _ in consumer.store.items()
        if key[0] != "r" and len(key) > 2 and isinstance(key[2], tuple)
    }
    consumer.store, consumer.engine = store, engine
    # the values as of now are what the next batch compares with; then every rule's whole value
    engine.changes(as_of, metrics=consumer.planner.wanted)
    planner = consumer.planner
    planner.forget_covered()
    writes = []
    if planner.ready:
        planner.forget_windows()
        writes = planner.due_by_time(engine, as_of, also=old_groups)
    done.planned = SQLiteOutbox.put(
        conn, writes, as_of / 1000, consumer.debounce, maybe_sent=consumer.maybe_sent
    )
    conn.execute("DELETE FROM state")
    Database.set_meta(conn, "state_at", str(upto))  # the state of the log up to here
    if store.index is not None:
        write_index(conn, store.index)
    store.flush(conn)
    if engine.horizon is not None:
        Database.set_meta(conn, "horizon", str(engine.horizon))
    Database.set_meta(conn, "tick_targets", json.dumps(planner.tick_state()))
    done.seconds = time.monotonic() - started
    log.warning(
        "state rebuilt from %d events in %.1f s (%d quarantined, %d released from the "
        "quarantine); %d field value(s) to write",
        done.events,
        done.seconds,
        len(done.quarantined),
        len(done.released),
        done.planned,
    )
    return done


def ensure_definitions(consumer: Consumer, *, read_only: bool = False) -> Rebuilt | None:
    """On the database thread, after the state was loaded: rebuild it if it was built under
    other definitions (see the module docstring); record the definitions of a new state.
    ``read_only``: rebuild in memory, write nothing to the file."""
    conn = consumer.db.conn
    current = fingerprint(consumer.catalog, consumer.windows)
    stored = _stored(conn)
    if stored == current:
        return None
    why = changes(stored, current)
    empty = _empty(conn)

    def run(conn: sqlite3.Connection) -> Rebuilt | None:
        result = None if empty else _rebuild(consumer, conn, why)
        Database.set_meta(conn, META_KEY, json.dumps(current, sort_keys=True))
        return result

    if not read_only:
        return consumer.db.transaction(run)()
    conn.execute("BEGIN")
    try:
        return run(conn)
    finally:
        conn.execute("ROLLBACK")


def rebuild_due(path: str, catalog: Catalog, windows: tuple[WindowSpec, ...]) -> str | None:
    """For ``doctor``, reading the state file only: what the next start rebuilds for (None:
    nothing, or the file cannot say)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        stored = _stored(conn)
        current = fingerprint(catalog, windows)
        if stored == current or _empty(conn):
            return None
        upto = consumed_position(conn)
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM events WHERE position <= ?", (upto,)
        ).fetchone()
        return (
            f"metric definitions changed since it was built ({changes(stored, current)}): "
            f"the next start rebuilds it from the event log ({count} events)"
        )
    except (sqlite3.Error, ValueError, TypeError):  # a damaged file: its readers say how
        return None
    finally:
        conn.close()
