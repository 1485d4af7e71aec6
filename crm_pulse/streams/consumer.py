"""The consumer: applies the log to the engine, one transaction per batch.

One batch = read events after the consumed position -> apply them -> ask the engine what moved
-> plan field writes -> put them in the outbox -> write the changed state keys and the new
consumed position -> COMMIT. Either all of it is on disk or none of it, so a crash at any point
neither loses an event (it is still after the consumed position) nor counts one twice (its
effect and the position moved together).

If a transaction fails, memory may be ahead of disk: the consumer reloads the committed state
before going on.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from ..metrics.calendar import WindowSpec
from ..metrics.catalog import Catalog
from ..metrics.engine import Engine
from ..metrics.report import MetricValue
from .database import Database
from .log import consumed_position, last_position, read_events
from .state import SQLiteStore
from .writeback import Planner, SQLiteOutbox

__all__ = ["BatchResult", "Consumer"]


@dataclass(frozen=True)
class BatchResult:
    events: int
    applied: int
    changed: int
    planned: int
    position: int
    backlog: int


class Consumer:
    """Owns the engine; every method runs on the database thread."""

    def __init__(
        self,
        db: Database,
        catalog: Catalog,
        windows: tuple[WindowSpec, ...],
        planner: Planner,
        *,
        debounce: float,
        clock: Callable[[], float],
        on_changes: Callable[[list[MetricValue]], None] | None = None,
    ) -> None:
        self.db = db
        self.catalog = catalog
        self.windows = windows
        self.planner = planner
        self.debounce = debounce
        self.clock = clock
        self.on_changes = on_changes
        self.store = SQLiteStore()
        self.engine = Engine(catalog, self.store, windows)
        self.db.call(self._load)

    def _load(self) -> None:
        self.store.load(self.db.conn)
        self.engine = Engine(self.catalog, self.store, self.windows)
        horizon = self.db.get_meta("horizon")
        if horizon is not None:
            self.engine.resume(int(horizon))
        self.planner.forget_covered()  # what it planned since the last commit was rolled back
        ticked = self.db.get_meta("tick_targets")
        self.planner.restore_tick_state(json.loads(ticked) if ticked else {})

    def _counters(self, conn: sqlite3.Connection) -> tuple[int, int]:
        row = conn.execute(
            "SELECT (SELECT value FROM meta WHERE name='applied'), "
            "(SELECT value FROM meta WHERE name='consumed_events')"
        ).fetchone()
        return int(row[0] or 0), int(row[1] or 0)

    def step(self, limit: int) -> BatchResult:
        """Consume up to ``limit`` events in one transaction (database thread)."""
        try:
            return self.db.transaction(lambda conn: self._step(conn, limit))()
        except BaseException:
            self._load()
            raise

    def _step(self, conn: sqlite3.Connection, limit: int) -> BatchResult:
        now = self.clock()
        as_of = int(now * 1000)
        position = consumed_position(conn)
        rows = read_events(conn, position, limit)
        self.engine.advance(as_of)  # what came due counts, and is reported with this batch
        applied = 0
        for _, event in rows:
            if self.engine.apply(event):
                applied += 1
        changed = self.engine.changes(as_of, metrics=self.planner.wanted)
        writes = self.planner.plan(changed, as_of, self.engine)
        planned = SQLiteOutbox.put(conn, writes, now, self.debounce)
        if rows:
            position = rows[-1][0]
            total_applied, total_events = self._counters(conn)
            Database.set_meta(conn, "consumed", str(position))
            Database.set_meta(conn, "applied", str(total_applied + applied))
            Database.set_meta(conn, "consumed_events", str(total_events + len(rows)))
        self._keep_horizon(conn)
        self.store.flush(conn)
        if changed and self.on_changes is not None:
            self.on_changes(changed)
        return BatchResult(
            len(rows), applied, len(changed), planned, position, last_position(conn) - position
        )

    def tick(self) -> int:
        """Plan the writes that time alone calls for (rollover, rolling windows, records whose
        time came)."""

        def run(conn: sqlite3.Connection) -> int:
            now = self.clock()
            as_of = int(now * 1000)
            writes = self.planner.due_by_time(self.engine, as_of)
            self.engine.advance(as_of)  # future-dated records whose time came: their windows
            changed = self.engine.changes(as_of, metrics=self.planner.wanted)
            writes.extend(self.planner.plan(changed, as_of, self.engine))
            planned = SQLiteOutbox.put(conn, writes, now, 0.0)
            self._keep_horizon(conn)
            self.store.flush(conn)
            # with the writes it planned: a restart does not re-evaluate what did not roll over
            Database.set_meta(conn, "tick_targets", json.dumps(self.planner.tick_state()))
            return planned

        try:
            return self.db.transaction(run)()
        except BaseException:
            self._load()
            raise

    def _keep_horizon(self, conn: sqlite3.Connection) -> None:
        """With the state: what came due up to it is in the outbox, a restart goes on from it."""
        if self.engine.horizon is not None:
            Database.set_meta(conn, "horizon", str(self.engine.horizon))

    def report(self, as_of: int) -> list[MetricValue]:
        return self.engine.report(as_of)
