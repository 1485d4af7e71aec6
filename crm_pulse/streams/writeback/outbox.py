"""The outbox: field values waiting to be written, one row per (connector, object, record, field).

* :meth:`SQLiteOutbox.put` runs inside the consumer's transaction (with the engine state and the
  log offset), so a value is planned exactly when the change that caused it is applied.
* A newer value for the same field replaces an unsent older one (coalescing); the row keeps its
  due time, so a burst of changes is one write after the debounce.
* A value equal to the last one written is not sent at all, and cancels a pending one; so does
  ``None`` (an undefined metric) for a field never written: what the field holds is not ours.
* The writer takes due rows (:meth:`due`) and reports back (:meth:`settle`): written values are
  remembered in ``written``; failures are retried at a later due time or moved to
  ``dead_letters`` with their reason (a field written later drops its dead letters: after
  ``crm-pulse provision`` created a missing field, the count goes back down). A row replaced while its write was in flight (``seq``
  changed) stays, so the newer value is still sent; a row cancelled while its write was in flight
  (the value went back to the one written before) is planned again with that earlier value once
  the write lands, since the CRM then holds the cancelled one.
* ``written`` lags the CRM when a process dies between a write reaching the CRM and its settle.
  So a row that may have been sent unsettled (handed to the sink, or pending when the process
  started: :attr:`SQLiteOutbox.maybe_sent`) is never cancelled: a value back to the ``written``
  one goes out (the kill -9 test once left a field at its earlier value for good).

Both runtimes use it: the embedded runtime on its state file, a Faust writer on a local file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ...connectors.protocols import FieldWrite
from ..embedded.database import Database

__all__ = ["MAX_REQUEUES", "REQUEUE_CAP", "OutboxItem", "Outcome", "SQLiteOutbox"]

REQUEUE_CAP = 200
"""Dead letters put back per successful write round."""
MAX_REQUEUES = 3
"""A dead letter comes back by itself at most this many times (then only by `deadletters retry`)."""


@dataclass(frozen=True)
class OutboxItem:
    write: FieldWrite
    seq: int
    attempts: int
    due: float


@dataclass(frozen=True)
class Outcome:
    """What became of one item: ``written``, ``retry`` at ``retry_at``, or ``dead``."""

    item: OutboxItem
    kind: Literal["written", "retry", "dead"]
    retry_at: float = 0.0
    reason: str = ""
    counts_attempt: bool = True
    transient: bool = False
    """For ``dead``: it died of a transient failure (an outage), so it may come back."""


def _key(w: FieldWrite) -> tuple[str, str, str, str]:
    return (w.connector, w.object, w.record_id, w.field)


def _text(value: float | int | None) -> str:
    return json.dumps(value)


def _pending(conn: sqlite3.Connection, key: tuple[str, str, str, str]) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM outbox WHERE connector=? AND object=? AND record_id=? AND field=?",
            key,
        ).fetchone()
        is not None
    )


class SQLiteOutbox:
    """The outbox tables of a :class:`~crm_pulse.streams.embedded.database.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._requeues: dict[tuple[str, str, str, str], int] = {}
        """Times each re-queued dead letter came back (kept if it dies again)."""
        self.maybe_sent: set[tuple[str, str, str, str]] = set()
        """Fields whose pending row may have reached the CRM without being settled: handed to
        the sink and not settled yet, or pending when this process opened the file (a process
        killed between a write and its settle). The CRM may not hold their ``written`` value,
        so :meth:`put` never cancels their rows (pass this set as its ``maybe_sent``)."""

    def recover(self, conn: sqlite3.Connection) -> None:
        """At start, before anything is planned: every pending row may have been sent by the
        process that stopped (see :attr:`maybe_sent`)."""
        rows = conn.execute("SELECT connector, object, record_id, field FROM outbox")
        self.maybe_sent.update((r[0], r[1], r[2], r[3]) for r in rows)

    # ------------------------------------------------------------ planning (consumer thread)
    @staticmethod
    def put(
        conn: sqlite3.Connection,
        writes: Sequence[FieldWrite],
        now: float,
        debounce: float,
        *,
        maybe_sent: Collection[tuple[str, str, str, str]] = (),
    ) -> int:
        """Plan writes in the caller's transaction; returns how many rows are now pending.

        A write equal to the field's ``written`` value cancels its pending row, unless the
        field is in ``maybe_sent`` (:attr:`SQLiteOutbox.maybe_sent`): then the CRM may hold the
        row's value, not the written one, so the row takes the written value and goes out."""
        planned = 0
        for w in writes:
            key = _key(w)
            value = _text(w.value)
            row = conn.execute(
                "SELECT value FROM written WHERE connector=? AND object=? AND record_id=? "
                "AND field=?",
                key,
            ).fetchone()
            unchanged = (row is not None and row[0] == value) or (row is None and w.value is None)
            if unchanged and key in maybe_sent and _pending(conn, key):
                unchanged = False
            if unchanged:
                # unchanged; or empty for a field crm-pulse never wrote: its value is not ours
                conn.execute(
                    "DELETE FROM outbox WHERE connector=? AND object=? AND record_id=? AND field=?",
                    key,
                )
                continue
            conn.execute(
                "INSERT INTO outbox (connector, object, record_id, field, value, seq, due) "
                "VALUES (?, ?, ?, ?, ?, 1, ?) "
                "ON CONFLICT (connector, object, record_id, field) DO UPDATE SET "
                "value = excluded.value, seq = outbox.seq + 1 WHERE outbox.value != excluded.value",
                (*key, value, now + debounce),
            )
            planned += 1
        return planned

    @staticmethod
    def plan_against(
        conn: sqlite3.Connection,
        written: Mapping[tuple[str, str, str, str], str],
        writes: Sequence[FieldWrite],
        now: float,
    ) -> set[tuple[str, str, str, str]]:
        """For a runtime that keeps the last written value of each field elsewhere (a Faust
        writer, in its changelogged table): take ``written`` (field -> value as
        :meth:`written_values` gives it) as what was last written, plan ``writes`` against it
        (due now) and return the fields now pending."""
        conn.execute("DELETE FROM written")
        conn.executemany(
            "INSERT INTO written (connector, object, record_id, field, value, written_ms) "
            "VALUES (?, ?, ?, ?, ?, 0)",
            [(*f, v) for f, v in written.items()],
        )
        SQLiteOutbox.put(conn, writes, now, 0.0)
        rows = conn.execute("SELECT connector, object, record_id, field FROM outbox")
        return {(r[0], r[1], r[2], r[3]) for r in rows}

    @staticmethod
    def written_values(conn: sqlite3.Connection) -> dict[tuple[str, str, str, str], str]:
        """The last written value of each field (as stored: JSON text)."""
        rows = conn.execute("SELECT connector, object, record_id, field, value FROM written")
        return {(r[0], r[1], r[2], r[3]): r[4] for r in rows}

    # ------------------------------------------------------------ writer side (async)
    async def due(
        self,
        connector: str,
        now: float,
        limit: int,
        *,
        debounced_too: bool = False,
        exclude: Collection[tuple[str, str, str, str]] = (),
    ) -> list[OutboxItem]:
        """Rows due at ``now``; with ``debounced_too`` also first attempts still in their
        debounce (a draining shutdown sends them rather than leave them for the next start).
        Fields in ``exclude`` (a writer's rounds still in flight) are left out: a newer value
        waits until the write of the older one is settled."""

        def query() -> list[OutboxItem]:
            skip = sum(1 for k in exclude if k[0] == connector)
            rows = self.db.conn.execute(
                "SELECT object, record_id, field, value, seq, attempts, due FROM outbox "
                "WHERE connector = ? AND (due <= ? OR (? AND attempts = 0)) "
                "ORDER BY due, object, record_id, field LIMIT ?",
                (connector, now, debounced_too, limit + skip),
            ).fetchall()
            if skip:
                rows = [r for r in rows if (connector, r[0], r[1], r[2]) not in exclude][:limit]
            # handed to the sink: from now on the CRM may hold these values (until settled)
            self.maybe_sent.update((connector, r[0], r[1], r[2]) for r in rows)
            return [
                OutboxItem(
                    FieldWrite(connector, obj, rid, fld, json.loads(value)), seq, attempts, due
                )
                for obj, rid, fld, value, seq, attempts, due in rows
            ]

        return await self.db.run(query)

    async def next_due(self, connector: str) -> float | None:
        def query() -> float | None:
            row = self.db.conn.execute(
                "SELECT MIN(due) FROM outbox WHERE connector = ?", (connector,)
            ).fetchone()
            return None if row[0] is None else float(row[0])

        return await self.db.run(query)

    async def settle(self, outcomes: Sequence[Outcome], now_ms: int) -> None:
        def apply(conn: sqlite3.Connection) -> None:
            settled = [_key(o.item.write) for o in outcomes if o.kind == "written"]
            # once this is durable, ``written`` says what the CRM holds for these fields again
            self.db.after_commit(lambda: self.maybe_sent.difference_update(settled))
            if len(set(settled)) == len(settled):  # one row per field (as `due` hands out)
                self._settle_written(conn, [o for o in outcomes if o.kind == "written"], now_ms)
                rest: Sequence[Outcome] = [o for o in outcomes if o.kind != "written"]
            else:
                rest = outcomes
            for o in rest:
                key = _key(o.item.write)
                match = (*key, o.item.seq)
                if o.kind == "written":
                    self._settle_written(conn, [o], now_ms)
                elif o.kind == "retry":
                    conn.execute(
                        "UPDATE outbox SET due = ?, attempts = attempts + ?, last_error = ? "
                        "WHERE connector=? AND object=? AND record_id=? AND field=?",
                        (o.retry_at, int(o.counts_attempt), o.reason, *key),
                    )
                else:
                    conn.execute(
                        "INSERT INTO dead_letters (connector, object, record_id, field, value, "
                        "reason, attempts, failed_ms, transient, requeues) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            *key,
                            _text(o.item.write.value),
                            o.reason,
                            o.item.attempts + 1,
                            now_ms,
                            int(o.transient),
                            self._requeues.pop(key, 0),
                        ),
                    )
                    conn.execute(
                        "DELETE FROM outbox WHERE connector=? AND object=? AND record_id=? "
                        "AND field=? AND seq=?",
                        match,
                    )

        await self.db.run(self.db.transaction(apply))

    def _settle_written(
        self, conn: sqlite3.Connection, written: Sequence[Outcome], now_ms: int
    ) -> None:
        """Written values (one per field): remembered as what the CRM holds, their rows done
        (unless a newer value replaced them meanwhile: ``seq`` moved), their dead letters
        history. The statements go out as ``executemany`` batches (a round holds thousands)."""
        if not written:
            return
        keys = [_key(o.item.write) for o in written]
        sent = [_text(o.item.write.value) for o in written]
        looked = [
            conn.execute(
                "SELECT (SELECT value FROM written WHERE connector=?1 AND object=?2 AND "
                "record_id=?3 AND field=?4), EXISTS (SELECT 1 FROM outbox WHERE connector=?1 "
                "AND object=?2 AND record_id=?3 AND field=?4)",
                key,
            ).fetchone()
            for key in keys
        ]
        conn.executemany(
            "INSERT INTO written VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
            "(connector, object, record_id, field) DO UPDATE SET "
            "value = excluded.value, written_ms = excluded.written_ms",
            [(*key, text, now_ms) for key, text in zip(keys, sent, strict=True)],
        )
        conn.executemany(
            "DELETE FROM outbox WHERE connector=? AND object=? AND record_id=? AND field=? "
            "AND seq=?",
            [(*key, o.item.seq) for key, o in zip(keys, written, strict=True)],
        )
        for key, text, (before, pending) in zip(keys, sent, looked, strict=True):
            if not pending and before is not None and before != text:
                # cancelled while in flight (the value went back to the one written before,
                # see put): the CRM holds the cancelled value now, so the earlier one goes out
                # again
                conn.execute(
                    "INSERT INTO outbox (connector, object, record_id, field, value, seq, due) "
                    "VALUES (?, ?, ?, ?, ?, 1, ?)",
                    (*key, before, now_ms / 1000),
                )
        connectors = {key[0] for key in keys}
        if any(
            conn.execute("SELECT 1 FROM dead_letters WHERE connector = ? LIMIT 1", (c,)).fetchone()
            for c in connectors
        ):  # a field written since: its dead letters are history
            conn.executemany(
                "DELETE FROM dead_letters WHERE connector=? AND object=? AND record_id=? "
                "AND field=?",
                keys,
            )

    # ------------------------------------------------------------ dead letters
    async def requeue_dead(
        self,
        connector: str,
        now: float,
        *,
        ids: Sequence[int] | None = None,
        cap: int = REQUEUE_CAP,
        automatic: bool = True,
    ) -> int:
        """Put dead letters back into the outbox (due now); returns how many came back.

        ``automatic``: only those that died of a transient failure and came back fewer than
        :data:`MAX_REQUEUES` times (the writer calls this after a successful write); otherwise
        the given ``ids`` or all of the connector's (``crm-pulse deadletters retry``)."""
        return await self.db.run(
            self.db.transaction(
                lambda conn: self.requeue_in(conn, connector, now, ids, cap, automatic)
            )
        )

    def requeue_in(
        self,
        conn: sqlite3.Connection,
        connector: str | None,
        now: float,
        ids: Sequence[int] | None,
        cap: int,
        automatic: bool,
    ) -> int:
        where = "1"
        args: list[object] = []
        if connector is not None:
            where, args = "connector = ?", [connector]
        if automatic:
            where += " AND transient = 1 AND requeues < ?"
            args.append(MAX_REQUEUES)
        if ids is not None:
            where += f" AND id IN ({','.join('?' * len(ids))})"
            args.extend(ids)
        rows = conn.execute(
            "SELECT id, connector, object, record_id, field, value, failed_ms, requeues "
            f"FROM dead_letters WHERE {where} ORDER BY id LIMIT ?",
            (*args, cap),
        ).fetchall()
        back = 0
        for dead_id, conn_name, obj, rid, fld, value, failed_ms, requeues in rows:
            key = (conn_name, obj, rid, fld)
            conn.execute("DELETE FROM dead_letters WHERE id = ?", (dead_id,))
            newer = conn.execute(
                "SELECT 1 FROM written WHERE connector=? AND object=? AND record_id=? AND "
                "field=? AND written_ms > ? UNION ALL SELECT 1 FROM outbox WHERE connector=? "
                "AND object=? AND record_id=? AND field=?",
                (*key, failed_ms, *key),
            ).fetchone()
            if newer is not None:
                continue  # a newer value was written or is on its way: this one is stale
            conn.execute(
                "INSERT INTO outbox (connector, object, record_id, field, value, seq, due) "
                "VALUES (?, ?, ?, ?, ?, 1, ?)",
                (*key, value, now),
            )
            self._requeues[key] = int(requeues) + (1 if automatic else 0)
            back += 1
        return back

    @staticmethod
    def clear(conn: sqlite3.Connection) -> None:
        """Forget every pending write (a Faust writer reloading its in-memory outbox from its
        table after a rebalance)."""
        conn.execute("DELETE FROM outbox")

    @staticmethod
    def drop_dead(conn: sqlite3.Connection, ids: Sequence[int] | None) -> int:
        """Delete dead letters (``None``: all); returns how many."""
        if ids is None:
            return int(conn.execute("DELETE FROM dead_letters").rowcount)
        return sum(
            int(conn.execute("DELETE FROM dead_letters WHERE id = ?", (i,)).rowcount) for i in ids
        )

    # ------------------------------------------------------------ reading (status, dry run)
    def pending(self, conn: sqlite3.Connection) -> list[tuple[FieldWrite, float | int | None]]:
        """Every pending write with the value last written to that field (None if never)."""
        rows = conn.execute(
            "SELECT o.connector, o.object, o.record_id, o.field, o.value, w.value FROM outbox o "
            "LEFT JOIN written w USING (connector, object, record_id, field) "
            "ORDER BY o.connector, o.object, o.record_id, o.field"
        ).fetchall()
        return [
            (
                FieldWrite(c, obj, rid, fld, json.loads(value)),
                None if old is None else json.loads(old),
            )
            for c, obj, rid, fld, value, old in rows
        ]

    @staticmethod
    def depth(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    @staticmethod
    def dead_letters(conn: sqlite3.Connection, limit: int = 20) -> list[dict[str, object]]:
        rows = conn.execute(
            "SELECT id, connector, object, record_id, field, value, reason, attempts, failed_ms "
            "FROM dead_letters ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        names = ("id", "connector", "object", "record_id", "field", "value", "reason", "attempts")
        return [dict(zip((*names, "failed_ms"), row, strict=True)) for row in rows]

    @staticmethod
    def dead_letter_count(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])
