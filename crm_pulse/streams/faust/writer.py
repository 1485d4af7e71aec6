"""The ``writer`` agent's stage: field values in, pending writes kept durably in the ``writer``
table, written to the CRMs in the background by the shared
:class:`~crm_pulse.streams.writeback.Writer` (vendor batch sizes, backoff, Retry-After, dead
letters).

Two halves, so that a CRM outage never holds the stream:

* :meth:`WriterStage.apply` (the agent, per batch of values) compares each value with what the
  field last received and records the ones to write as **pending** in the field's table entry;
  the commit (changelog acknowledged, then the input positions) is all the agent waits for. No
  CRM call is on its path, so during a long backoff the agent keeps acknowledging values, Faust's
  stream buffer never fills (one fetcher feeds all agents: the records and aggregates agents
  keep consuming), and a rebalance waits for no CRM.
* :meth:`WriterStage.run` (a task of the worker) writes the pending values of the values
  partitions this worker holds, through the shared writer and an in-memory outbox
  (coalescing, due times, attempts), and records each outcome in the table: a written value
  becomes the field's last written value and stops being pending (unless a newer value replaced
  it meanwhile); a value the CRM refused for good is dropped (its field's value becomes unknown)
  and kept as a dead letter in a compacted topic (:mod:`.deadletters`), appended before the
  table moves; a later successful write of that field removes its letter.

A field's entry holds its last written value (``w``) and its pending value (``p``, with its
values partition). While a value is pending the CRM may hold it or an older one (a write may have
landed before a worker died), so a new value for a field with a pending one is always written;
only a field with nothing pending skips a value equal to its last written one. A worker killed
at any point leaves every pending value in the changelog; the partition's next owner (or the
same worker restarted) loads them (:meth:`WriterStage.reload`) and writes them, at worst again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from ...connectors.protocols import FieldWrite
from ...errors import FatalError
from ..embedded import Database
from ..writeback import OutboxItem, Outcome, SQLiteOutbox, Writer
from .deadletters import DeadLetterLog, Letter
from .order import Anchor
from .stage import DeadLetter, Parts
from .stores import GroupedStore

__all__ = ["Handouts", "RecordingOutbox", "WriterStage"]

log = logging.getLogger("crm_pulse.faust")

_UNKNOWN = "\x00unknown"  # a field's last written value when it is not known: equals no value
_REFUSED = "\x00refused"  # unknown too: its last write was refused for good (a dead letter)
Field = tuple[str, str, str, str]


def _field(w: FieldWrite) -> Field:
    return (w.connector, w.object, w.record_id, w.field)


def _written_key(f: Field) -> tuple[str, int, str]:
    """The writer table's key for the last value written to field ``f``."""
    return ("w", 0, "/".join(f))


def _pending_key(f: Field) -> tuple[str, int, str]:
    """The writer table's key for ``f``'s pending value (in the same entry as ``w``)."""
    return ("p", 0, "/".join(f))


class Handouts:
    """Which pending fields a writer took from the outbox (their value may be in the CRM), and
    the lock that makes taking them and the agent's decisions one after the other."""

    def __init__(self) -> None:
        self.fields: set[Field] = set()
        self.gate = asyncio.Lock()


class RecordingOutbox(SQLiteOutbox):
    """The writers' in-memory outbox; it also notes the fields handed to a writer and keeps
    each settled outcome for the table."""

    def __init__(self, db: Database, handouts: Handouts) -> None:
        super().__init__(db)
        self.handouts = handouts
        self.outcomes: list[Outcome] = []

    async def due(
        self,
        connector: str,
        now: float,
        limit: int,
        *,
        debounced_too: bool = False,
        exclude: Collection[Field] = (),
    ) -> list[OutboxItem]:
        async with self.handouts.gate:
            items = await super().due(
                connector, now, limit, debounced_too=debounced_too, exclude=exclude
            )
            self.handouts.fields.update(_field(i.write) for i in items)
        return items

    async def settle(self, outcomes: Sequence[Outcome], now_ms: int) -> None:
        await super().settle(outcomes, now_ms)
        self.outcomes.extend(outcomes)


class WriterStage:
    def __init__(
        self,
        store: GroupedStore,
        writers: dict[str, Writer],
        outbox_db: Database,
        dead_letter: DeadLetter,
        *,
        topic: str = "values",
        lock: asyncio.Lock | None = None,
        handouts: Handouts | None = None,
        dead_letters: DeadLetterLog | None = None,
    ) -> None:
        self.store = store
        self.dead_letters = dead_letters
        """Where writes refused for good are kept (a compacted topic; see .deadletters)."""
        self.writers = writers
        self.outbox_db = outbox_db  # the writers' shared outbox (in memory)
        self.dead_letter = dead_letter
        self.topic = topic  # the values topic
        self.lock = lock or asyncio.Lock()  # the agent's: the table changes under it only
        self.handouts = handouts or Handouts()  # shared with the writers' RecordingOutbox
        self.partition_of: dict[Field, int] = {}  # pending fields in the in-memory outbox
        self.owned: frozenset[int] | None = None  # values partitions loaded (reload)
        self._wake: asyncio.Event | None = None
        self._owned_now: Callable[[], tuple[int, frozenset[int]] | None] | None = None

    # ------------------------------------------------------------ the agent
    async def apply(self, parts: Parts) -> None:
        """Record the values to write as pending (durable), then the input positions."""
        sent = []
        batches: list[tuple[Any, list[FieldWrite]]] = []
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
        async with self.handouts.gate:  # no writer takes a field while this batch decides
            await self._pend(batches)

    async def _pend(self, batches: list[tuple[Any, list[FieldWrite]]]) -> None:
        store = self.store
        handed = self.handouts.fields
        queued: dict[Field, FieldWrite] = {}  # the last decision per field counts
        cancelled: dict[Field, tuple[FieldWrite, str | None]] = {}
        for anchor, ws in batches:
            partition = anchor.message.partition
            for w in ws:
                f = _field(w)
                text = json.dumps(w.value)
                pending = store.get(_pending_key(f))
                written = store.get(_written_key(f))
                same = written == text or (written is None and w.value is None)
                if pending is None:
                    if same:
                        continue  # unchanged; or empty for a field never written: not ours
                elif pending[0] == text:
                    continue  # on its way already
                elif same and f not in handed:  # back to what the CRM holds, before any write
                    store.delete(_pending_key(f))
                    cancelled[f] = (w, written)
                    queued.pop(f, None)
                    continue
                store.put(_pending_key(f), (text, partition, f))
                cancelled.pop(f, None)
                queued[f] = w
                self.partition_of[f] = partition
            store.stage(anchor)  # under the partition of these fields' values
        await store.commit()  # pending writes durable, then the positions: the batch is done
        db = self.outbox_db
        if cancelled:  # equal to the field's last written value: the outbox drops it
            last = {f: v for f, (_w, v) in cancelled.items() if v is not None}
            drop = [w for w, _v in cancelled.values()]
            await db.run(db.transaction(lambda c: SQLiteOutbox.plan_against(c, last, drop, 0.0)))
            for f in cancelled:
                self.partition_of.pop(f, None)
        if queued:
            await self._enqueue(list(queued.values()))

    def rollback(self) -> None:
        self.store.rollback()

    async def _enqueue(self, writes: Sequence[FieldWrite]) -> None:
        """Into the in-memory outbox, due now (a newer value replaces one waiting there)."""
        db = self.outbox_db
        unknown = {_field(w): _UNKNOWN for w in writes}  # so that every one of them is planned
        now = time.time()
        await db.run(db.transaction(lambda c: SQLiteOutbox.plan_against(c, unknown, writes, now)))
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------ the writing task
    async def run(
        self, owned: Callable[[], tuple[int, frozenset[int]] | None], poll: float = 1.0
    ) -> None:
        """Write pending values for ever: those of the values partitions ``owned()`` names with
        the consumer generation (None while a rebalance or a table recovery is under way:
        nothing is written then; a new generation reloads the pending writes)."""
        self._wake = asyncio.Event()
        self._owned_now = owned
        loaded: tuple[int, frozenset[int]] | None = None
        while True:
            mine = owned()
            if mine is None:
                await asyncio.sleep(0.2)
                continue
            try:
                if mine != loaded:
                    await self.reload(mine[1])
                    loaded = mine
                await self.flush()
            except FatalError:
                raise  # bad credentials and the like: the worker stops, as the agents would
            except Exception:  # Kafka or the CRM failed unexpectedly: start over from the table
                log.exception("the writing task failed; it reloads the pending writes")
                loaded = None
                await asyncio.sleep(poll)
                continue
            wait = poll
            now = time.time()
            for writer in self.writers.values():
                nxt = await writer.outbox.next_due(writer.connector)
                if nxt is not None:
                    wait = min(wait, max(nxt, writer.stats.paused_until) - now)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, wait))

    async def flush(self) -> None:
        """One round: send what is due (the CRM call holds no lock), record the outcomes."""
        for writer in self.writers.values():
            await writer.flush()
        await self.record()

    async def record(self) -> None:
        """Settled outcomes into the table: written values become the fields' last written
        ones and stop being pending; values refused for good are dropped."""
        outcomes: list[Outcome] = []
        for writer in self.writers.values():
            if isinstance(writer.outbox, RecordingOutbox):
                outcomes.extend(writer.outbox.outcomes)
                writer.outbox.outcomes.clear()
        if not outcomes:
            return
        async with self.lock:
            owned = self.owned
            if self._owned_now is not None:  # the assignment now, not the one last loaded
                now = self._owned_now()
                if now is None:  # a rebalance is under way: record once it is over
                    self._put_back(outcomes)
                    return
                owned = now[1]
            per_partition: dict[int, list[Outcome]] = {}
            for o in outcomes:
                if o.kind == "retry" or (o.kind == "dead" and o.transient):
                    continue  # still pending (a transient dead letter comes back later)
                f = _field(o.item.write)
                partition = self.partition_of.get(f)
                if partition is None or (owned is not None and partition not in owned):
                    continue  # the partition moved: its new owner writes what is pending there
                per_partition.setdefault(partition, []).append(o)
            store = self.store
            letters: list[Letter] = []
            cleared: list[FieldWrite] = []
            now_ms = int(time.time() * 1000)
            try:
                for partition, done in per_partition.items():
                    for o in done:
                        f = _field(o.item.write)
                        text = json.dumps(o.item.write.value)
                        before = store.get(_written_key(f))
                        if o.kind == "written":
                            store.put(_written_key(f), text)
                            if before == _REFUSED:  # its dead letter is history
                                cleared.append(o.item.write)
                        else:  # refused for good: a dead letter, durable before the table moves
                            store.put(_written_key(f), _REFUSED)
                            letters.append(
                                Letter(o.item.write, o.reason, o.item.attempts + 1, now_ms)
                            )
                        pending = store.get(_pending_key(f))
                        if pending is not None and pending[0] == text:
                            store.delete(_pending_key(f))
                            self.partition_of.pop(f, None)
                            self.handouts.fields.discard(f)
                    store.stage(Anchor(self.topic, partition))
                if self.dead_letters is not None and (letters or cleared):
                    await self.dead_letters.put(letters, cleared)
                if per_partition:
                    await store.commit(positions=False)
            except BaseException:
                store.rollback()
                raise

    def _put_back(self, outcomes: list[Outcome]) -> None:
        for writer in self.writers.values():
            if isinstance(writer.outbox, RecordingOutbox):
                writer.outbox.outcomes[:0] = outcomes
                return

    async def reload(self, owned: frozenset[int]) -> None:
        """The pending writes of the ``owned`` values partitions, from the table into the
        in-memory outbox (after a start or a rebalance); the others' are dropped from it."""
        async with self.lock:
            store = self.store
            found: list[FieldWrite] = []
            partition_of: dict[Field, int] = {}
            try:
                for key, value in store.items():
                    if key[0] != "p" or value[1] not in owned or value[2][0] not in self.writers:
                        continue
                    f = value[2]
                    found.append(FieldWrite(f[0], f[1], f[2], f[3], json.loads(value[0])))
                    partition_of[f] = value[1]
            finally:
                store.rollback()  # drop what the scan cached
            db = self.outbox_db
            await db.run(db.transaction(SQLiteOutbox.clear))
            for writer in self.writers.values():
                if isinstance(writer.outbox, RecordingOutbox):
                    writer.outbox.outcomes.clear()
            self.partition_of = partition_of
            self.handouts.fields = set(partition_of)  # a former owner may have sent them
            self.owned = owned
            if found:
                log.info(
                    "%d pending field writes (values partitions %s)", len(found), sorted(owned)
                )
                await self._enqueue(found)

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
