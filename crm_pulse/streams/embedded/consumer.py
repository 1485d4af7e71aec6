"""The consumer: applies the log to the engine, one transaction per batch.

One batch = read events after the consumed position -> apply them -> ask the engine what moved
-> plan field writes -> put them in the outbox -> write the new consumed position (and, when
one is due, a checkpoint of the engine state: :mod:`.checkpoints`) -> COMMIT. Either all of it
is on disk or none of it. A crash at any point neither loses an event (it is still after the
consumed position) nor counts one twice: a start loads the last checkpoint and re-applies the
log up to the consumed position without planning again (its writes are in the outbox).

If a transaction fails, memory may be ahead of disk: the consumer reloads the committed state
(the last checkpoint and the log after it) before going on.

An entry of the log that is not a valid event, or that the engine fails on, is quarantined
(:mod:`.quarantine`) and the consumer moves past it: one poison event never stops the runtime,
nor a restart. An engine failure rolls the batch back, reloads the state, quarantines that one
position and runs the batch again without it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass

from ...metrics.calendar import WindowSpec
from ...metrics.catalog import Catalog
from ...metrics.collector import StateFreezer, collector_paused
from ...metrics.engine import Engine
from ...metrics.groupindex import GroupIndex
from ...metrics.report import MetricValue
from ..writeback import Planner, SQLiteOutbox
from . import quarantine
from .checkpoints import Done, Failed, Policy, catch_up, write_checkpoint
from .database import Database, StateError
from .groups import index_current, write_index
from .log import (
    RecentEvents,
    consumed_position,
    event_json,
    last_position,
    read_log,
    state_position,
)
from .pollers import first_read_position
from .rebuild import Rebuilt, ensure_definitions
from .retention import compact_log, compaction_due, prune_reported
from .state import SQLiteStore

__all__ = ["BatchResult", "Consumer"]

log = logging.getLogger("crm_pulse.consumer")


class _ApplyFailed(Exception):
    def __init__(self, position: int, connector: str, body: str, reason: str) -> None:
        super().__init__(reason)
        self.position = position
        self.connector = connector
        self.body = body
        self.reason = reason


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
        recent: RecentEvents | None = None,
        read_only: bool = False,
        compact_every: int | None = None,
        start: bool = True,
        maybe_sent: Collection[tuple[str, str, str, str]] = frozenset(),
        checkpoints: Policy | None = None,
    ) -> None:
        """``compact_every``: event-log retention ``keep: latest`` (:mod:`.retention`), checked
        in each batch's transaction; None keeps every event. ``start=False``: the state is
        loaded later, by :meth:`open` on the database thread (a runtime that answers HTTP while
        it loads). ``maybe_sent``: the writers' outbox's
        :attr:`~crm_pulse.streams.writeback.SQLiteOutbox.maybe_sent` (what the batches plan
        must not cancel). ``checkpoints``: when the engine state is written to the file
        (:mod:`.checkpoints`; default: with every batch)."""
        self.maybe_sent = maybe_sent
        self.checkpoints = checkpoints or Policy()
        self._state_at = 0  # the log position of the state in the file (its last checkpoint)
        self._checkpointed_at = clock()
        self._loaded = False  # memory holds the state of the consumed position
        self.freezer = StateFreezer()  # the collector's full passes skip the state
        self.checkpoints_done: deque[Done] = deque(maxlen=20)
        """The last checkpoints (``/status``)."""
        self.compactions_done: deque[dict[str, int | float]] = deque(maxlen=20)
        """The last compactions of the event log (``/status``)."""
        self.first_writes_cpu_s: float | None = None
        """CPU seconds planning the first writes took, when this process planned them."""
        self._phase: Callable[[str, int], None] | None = None
        self.db = db
        self.recent = recent
        """Events this process appended, handed over parsed (:class:`~.log.RecentEvents`)."""
        self.compact_every = compact_every
        self.catalog = catalog
        self.windows = windows
        self.planner = planner
        self.debounce = debounce
        self.clock = clock
        self.on_changes = on_changes
        self.changed: dict[str, int] = {}
        """Per source, events that moved a metric since the start."""
        self.unchanged: dict[str, int] = {}
        """Per source, events that moved nothing (re-reads, our own writes coming back)."""
        self.store = SQLiteStore(GroupIndex(catalog))  # which records make a group: explain
        self.engine = Engine(catalog, self.store, windows, track_groups=True)
        self.quarantined = 0
        self._skip: set[int] = set()
        self.rebuilt: Rebuilt | None = None
        self.read_only = read_only
        self.activity: str | None = None
        """What a long step is doing now (for the status page), else None."""
        if start:
            self.db.call(self.open)

    def open(
        self,
        progress: Callable[[int, int], None] | None = None,
        phase: Callable[[str, int], None] | None = None,
    ) -> None:
        """Load the committed state, and rebuild it from the log if it was built under other
        definitions (:mod:`.rebuild`), else re-apply the log after its last checkpoint; on the
        database thread. ``progress(done, total)``: state entries read so far, now and then;
        ``phase(name, total)``: a step after the load begins (the log to re-apply)."""
        self._phase = phase
        self._load(progress, catch_up=False)
        self.rebuilt = ensure_definitions(self, read_only=self.read_only)
        if self.rebuilt is not None:  # the state of the log up to the consumed position, on disk
            self._state_at = consumed_position(self.db.conn)
        index = self.store.index
        if not self.read_only and index is not None and not index_current(self.db.conn, index):
            # a file from before the index, or that an older crm-pulse moved on: written once
            # from the index the load built (of the checkpoint's state, like the table)
            rows = self.db.transaction(lambda conn: write_index(conn, index))()
            log.info("group index written: %d row(s)", rows)
        if self.rebuilt is None:
            self._catch_up(progress)
        else:
            self._ready()
        self._phase = None  # a later reload (a failed batch) is not a start

    def _load(
        self, progress: Callable[[int, int], None] | None = None, *, catch_up: bool = True
    ) -> None:
        """Memory = the last checkpoint; with ``catch_up``, then the log after it."""
        self._loaded = False
        try:
            self.store.load(self.db.conn, progress=progress)
        except Exception as exc:
            raise StateError(self.db.path, "table state", str(exc)[:200]) from None
        prune_reported(self.store, self.planner.wanted)  # kept for the rules only
        self.engine = Engine(self.catalog, self.store, self.windows, track_groups=True)
        horizon = self.db.get_meta("horizon")
        if horizon is not None:
            self.engine.resume(int(horizon))
        conn = self.db.conn
        self._state_at = state_position(conn)
        self._checkpointed_at = self.clock()
        self._skip = quarantine.event_positions(conn, consumed_position(conn))
        self.planner.forget_covered()  # what it planned since the last commit was rolled back
        ticked = self.db.get_meta("tick_targets")
        self.planner.restore_tick_state(json.loads(ticked) if ticked else {})
        # sources whose first reads the whole values were planned after (in that transaction)
        written = self.db.get_meta("first_writes")
        self.planner.restore_first_reads(json.loads(written) if written else [])
        if catch_up:
            self._catch_up()

    def _catch_up(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Re-apply the log from the loaded checkpoint to the consumed position (an event the
        engine now fails on is quarantined and the whole load starts again without it)."""
        conn = self.db.conn
        upto = consumed_position(conn)
        if upto > self._state_at:
            if self._phase is not None:
                self._phase("re-applying the log after the last checkpoint", upto - self._state_at)
            log.info(
                "re-applying the event log after the last state checkpoint: positions %d-%d",
                self._state_at + 1,
                upto,
            )
            as_of = int(self.clock() * 1000)
            _read, failed = catch_up(conn, self.engine, self._state_at, upto, as_of)
            if failed is not None:
                self._quarantine_failed(failed)
                self._load(progress)
                return
            # their writes were planned by the batches that applied them (the outbox has them)
            self.engine.changes(as_of, metrics=self.planner.wanted)
        self._ready()

    def _ready(self) -> None:
        """Memory holds the state of the consumed position; the collector skips it."""
        self._loaded = True
        self.freezer.freeze()

    def checkpoint(self) -> bool:
        """Write the engine state now if it moved since the last checkpoint (a clean stop);
        on the database thread. False: nothing to write, or no state is loaded."""
        if not self._loaded or self.read_only:
            return False

        def run(conn: sqlite3.Connection) -> bool:
            position = consumed_position(conn)
            if position == self._state_at and not self.store.pending:
                return False
            self._write_checkpoint(conn, position)
            return True

        try:
            return self.db.transaction(run)()
        except BaseException:
            self._load()
            raise

    def _maybe_checkpoint(
        self, conn: sqlite3.Connection, position: int, applied: int, *, idle: bool
    ) -> None:
        """A checkpoint with this transaction if :class:`~.checkpoints.Policy` says so."""
        if self.checkpoints.due(
            since=position - self._state_at,
            applied_total=applied,
            backlog=last_position(conn) - position,
            idle=idle,
            idle_for=self.clock() - self._checkpointed_at,
            dirty=self.store.pending,
        ):
            self._write_checkpoint(conn, position)

    def _write_checkpoint(self, conn: sqlite3.Connection, position: int) -> None:
        began = time.thread_time()
        entries = write_checkpoint(conn, self.store, self.engine, position)
        self.freezer.freeze()  # what the batches since the last one built
        done = Done(
            self._state_at,
            position,
            entries,
            time.thread_time() - began,
            int(self.clock() * 1000),
        )
        self.checkpoints_done.append(done)
        # (a failed commit reloads the state, which resets both)
        self._state_at = position
        self._checkpointed_at = self.clock()

    def _counters(self, conn: sqlite3.Connection) -> tuple[int, int]:
        row = conn.execute(
            "SELECT (SELECT value FROM meta WHERE name='applied'), "
            "(SELECT value FROM meta WHERE name='consumed_events')"
        ).fetchone()
        return int(row[0] or 0), int(row[1] or 0)

    def step(self, limit: int) -> BatchResult:
        """Consume up to ``limit`` events in one transaction (database thread)."""
        while True:
            try:
                with collector_paused():  # runs between batches (see .freezer)
                    return self.db.transaction(lambda conn: self._step(conn, limit))()
            except _ApplyFailed as failed:
                self._load()
                self._quarantine_failed(failed)
            except BaseException:
                self._load()
                raise

    def _quarantine_failed(self, failed: _ApplyFailed | Failed) -> None:
        log.error(
            "the engine failed on an event; quarantined",
            extra={"position": failed.position, "reason": failed.reason[:300]},
        )

        def put(conn: sqlite3.Connection) -> None:
            quarantine.put(
                conn,
                failed.connector,
                "event",
                str(failed.position),
                f"the engine failed on it: {failed.reason}",
                payload=failed.body,
                now_ms=int(self.clock() * 1000),
            )

        self.db.transaction(put)()
        self._skip.add(failed.position)
        self.quarantined += 1

    def _step(self, conn: sqlite3.Connection, limit: int) -> BatchResult:
        now = self.clock()
        as_of = int(now * 1000)
        position = consumed_position(conn)
        rows, bad = read_log(conn, position, limit, self.recent)
        self.engine.advance(as_of)  # what came due counts, and is reported with this batch
        applied = 0
        changed: dict[str, int] = {}
        unchanged: dict[str, int] = {}
        with collector_paused():  # the state the batch builds is never garbage
            for pos, event in rows:
                if pos in self._skip:
                    continue
                try:
                    moved = self.engine.apply_counted(event)
                except Exception as exc:
                    raise _ApplyFailed(
                        pos, event.source, event_json(event), f"{type(exc).__name__}: {exc}"
                    ) from exc
                if moved is not None:
                    applied += 1
                counts = changed if moved else unchanged
                counts[event.source] = counts.get(event.source, 0) + 1
        for entry in bad:
            log.warning(
                "a log entry is not a valid event; quarantined",
                extra={"position": entry.position, "reason": entry.reason[:300]},
            )
            quarantine.put(
                conn,
                entry.connector,
                "event",
                str(entry.position),
                entry.reason,
                payload=entry.body,
                now_ms=as_of,
            )
        self.quarantined += len(bad)
        count = len(rows) + len(bad)
        total_events = 0
        if count:
            position = max([p for p, _ in rows[-1:]] + [b.position for b in bad[-1:]])
        self._touched()
        values = self.engine.changes(as_of, metrics=self.planner.wanted)
        if self._first_reads(conn, position):  # the first writes: every rule's whole value
            self.activity = "planning the first writes (every rule's value)"
            began = time.thread_time()
            try:
                writes = self.planner.due_by_time(self.engine, as_of)
            finally:
                self.activity = None
            self.first_writes_cpu_s = round(time.thread_time() - began, 3)
            self._first_writes_planned(conn)
        else:
            writes = self.planner.plan(values, as_of, self.engine)
        planned = SQLiteOutbox.put(conn, writes, now, self.debounce, maybe_sent=self.maybe_sent)
        if count:
            total_applied, total_events = self._counters(conn)
            total_events += count
            Database.set_meta(conn, "consumed", str(position))
            Database.set_meta(conn, "applied", str(total_applied + applied))
            Database.set_meta(conn, "consumed_events", str(total_events))
            self._skip = {p for p in self._skip if p > position}
            if self.compact_every is not None and compaction_due(conn, self.compact_every):
                began = time.thread_time()
                done = compact_log(conn, self.catalog)  # with the batch: all or nothing
                self.compactions_done.append(
                    {
                        "position": done.position,
                        "scanned": done.scanned,
                        "deleted": done.deleted,
                        "cpu_s": round(time.thread_time() - began, 3),
                        "at_ms": int(self.clock() * 1000),
                    }
                )
                log.info(
                    "event log compacted: %d superseded event(s) deleted, %d kept",
                    done.deleted,
                    done.kept,
                )
        self._maybe_checkpoint(conn, position, total_events, idle=count == 0)
        for source, n in changed.items():  # for display: a failed commit may count twice
            self.changed[source] = self.changed.get(source, 0) + n
        for source, n in unchanged.items():
            self.unchanged[source] = self.unchanged.get(source, 0) + n
        if values and self.on_changes is not None:
            self.on_changes(values)
        return BatchResult(
            count, applied, len(values), planned, position, last_position(conn) - position
        )

    def _touched(self) -> None:
        """Tell the planner which of its rolling rules' groups moved (its time index)."""
        if self.planner.time_measures:
            self.planner.touched(self.engine.touched(self.planner.time_measures))

    def _first_reads(self, conn: sqlite3.Connection, position: int) -> bool:
        """Tell the planner of sources whose first read is now applied (the first-read rule:
        :mod:`~crm_pulse.streams.writeback.planner`); True when writes may now begin."""
        became_ready = False
        for source in sorted(self.planner.waiting_for):
            done = first_read_position(conn, source)
            if done is not None and done <= position:
                became_ready = self.planner.first_read_done(source) or became_ready
        return became_ready

    def _first_writes_planned(self, conn: sqlite3.Connection) -> None:
        """Kept with the first writes: a restart neither waits for these sources again nor
        re-evaluates every rule (the tick state goes with it, see :meth:`Planner.tick_state`)."""
        Database.set_meta(conn, "first_writes", json.dumps(sorted(self.planner.sources)))
        Database.set_meta(conn, "tick_targets", json.dumps(self.planner.tick_state()))

    def tick(self) -> int:
        """Plan the writes that time alone calls for (rollover, rolling windows, records whose
        time came)."""

        def run(conn: sqlite3.Connection) -> int:
            now = self.clock()
            as_of = int(now * 1000)
            first = self._first_reads(conn, consumed_position(conn))
            self.engine.advance(as_of)  # future-dated records whose time came: their windows
            self._touched()  # (the planner evaluates their groups now, with the groups due)
            writes = self.planner.due_by_time(self.engine, as_of)
            if first:  # the first writes: every rule's whole value
                self._first_writes_planned(conn)
            changed = self.engine.changes(as_of, metrics=self.planner.wanted)
            writes.extend(self.planner.plan(changed, as_of, self.engine))
            planned = SQLiteOutbox.put(conn, writes, now, 0.0, maybe_sent=self.maybe_sent)
            position = consumed_position(conn)
            self._maybe_checkpoint(conn, position, self._counters(conn)[1], idle=True)
            # with the writes it planned: a restart does not re-evaluate what did not roll over
            Database.set_meta(conn, "tick_targets", json.dumps(self.planner.tick_state()))
            return planned

        try:
            with collector_paused():
                return self.db.transaction(run)()
        except BaseException:
            self._load()
            raise

    def report(self, as_of: int) -> list[MetricValue]:
        return self.engine.report(as_of)
