"""The ``writer`` agent's stage: field values in, written to the CRMs by the shared
:class:`~crm_pulse.streams.writeback.Writer` (vendor batch sizes, backoff, Retry-After, dead
letters), the last written value of each field kept in the ``writer`` table."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from ...connectors.protocols import FieldWrite
from ..embedded.database import Database
from ..writeback import SQLiteOutbox, Writer
from .stage import DeadLetter, Parts
from .stores import GroupedStore

__all__ = ["WriterStage"]

_UNKNOWN = "\x00unknown"  # a field's value while a write is under way: equals no value


def _field(w: FieldWrite) -> tuple[str, str, str, str]:
    return (w.connector, w.object, w.record_id, w.field)


def _written_key(w: FieldWrite) -> tuple[str, int, str]:
    """The writer table's key for the last value written to ``w``'s field."""
    return ("w", 0, "/".join(_field(w)))


class WriterStage:
    def __init__(
        self,
        store: GroupedStore,
        writers: dict[str, Writer],
        outbox_db: Database,
        dead_letter: DeadLetter,
    ) -> None:
        self.store = store
        self.writers = writers
        self.outbox_db = outbox_db  # the writers' shared outbox (in memory)
        self.dead_letter = dead_letter

    async def apply(self, parts: Parts) -> None:
        """Write the values that differ from what was last written, then remember them.

        The last written value of each field lives in the ``writer`` table (in the partition of
        the field's values), so a repeat is dropped whichever worker wrote it before. A field
        about to be written is first recorded as unknown, so that a worker dying between the CRM
        call and the record leaves it unknown (and the next value is written) rather than
        recorded with the value before. Values are coalesced in the shared outbox and written
        by the shared writer.
        """
        batches: list[tuple[Any, list[FieldWrite]]] = []
        sent = []
        for anchor, messages in parts:
            ws = []
            for m in messages:
                try:
                    ws.append(self.field_write(m.value))
                except ValueError as exc:
                    sent.append(await self.dead_letter(f"not a field value: {exc}", m))
            batches.append((anchor, ws))
        for future in sent:
            await future
        store = self.store
        known = {_field(w): store.get(_written_key(w)) for _, ws in batches for w in ws}
        writes = [w for _, ws in batches for w in ws]
        now = time.time()
        db = self.outbox_db
        last = {f: v for f, v in known.items() if v is not None}
        due = await db.run(
            db.transaction(lambda conn: SQLiteOutbox.plan_against(conn, last, writes, now))
        )
        if due:  # recorded as unknown before the CRM sees them (positions stay put)
            for anchor, ws in batches:
                for w in ws:
                    if _field(w) in due:
                        store.put(_written_key(w), _UNKNOWN)
                store.stage(anchor)
            await store.commit(positions=False)
        for writer in self.writers.values():
            await self._flush(writer)
        now_written = await db.run(lambda: SQLiteOutbox.written_values(db.conn))
        for anchor, ws in batches:
            for w in ws:
                f = _field(w)
                value = now_written.get(f)
                if f in due and value is not None:
                    store.put(_written_key(w), value)
            store.stage(anchor)  # under the partition of these fields' values
        await store.commit()  # the fields and positions, once every value is written

    def rollback(self) -> None:
        self.store.rollback()

    def field_write(self, value: bytes | None) -> FieldWrite:
        """A values message as a write; ValueError (with the reason) when it is not one."""
        try:
            raw = json.loads(value or b"")
            w = FieldWrite(**raw)
        except (ValueError, TypeError) as exc:
            raise ValueError(str(exc).splitlines()[0]) from exc
        names = (w.connector, w.object, w.record_id, w.field)
        if not all(isinstance(x, str) for x in names):
            raise ValueError("connector, object, record_id and field must be strings")
        if w.value is not None and (
            isinstance(w.value, bool) or not isinstance(w.value, int | float)
        ):
            raise ValueError(f"value must be a number or null, got {type(w.value).__name__}")
        if w.connector not in self.writers:
            raise ValueError(f"no connector named {w.connector!r} writes back here")
        return w

    async def _flush(self, writer: Writer) -> None:
        """Write everything this batch planned, waiting out rate limits and backoff."""
        while True:
            await writer.flush(drain=True)
            nxt = await writer.outbox.next_due(writer.connector)
            if nxt is None:
                return
            await asyncio.sleep(
                max(0.05, min(nxt, max(writer.stats.paused_until, nxt)) - time.time())
            )
