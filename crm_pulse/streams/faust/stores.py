"""Engine state in Faust tables: a :class:`~crm_pulse.metrics.state.StateStore` over a table.

:class:`GroupedStore` keeps the keys that must change together in one table entry (one
record's state and its delta sequence number; one metric group's buckets, reported values and
"already applied" markers), so that one changelog record carries all of an entry's change and a
worker killed half-way through leaves every entry either before or after a batch.

Writes wait in memory until :meth:`GroupedStore.commit`, which an agent calls *after* its output
was acknowledged by Kafka. The commit writes each entry to the table's store and appends its
changelog record, then the input positions behind them, and waits until Kafka has acknowledged
them (:mod:`.bulk`: a producer of our own appends each partition's records as record
batches, in order, the last record never durable before the others). Faust's own path
(``table[key] = value``) only queues the changelog record in the producer buffer, and
``producer.flush()`` may return with records still queued (it gives up after 0.1 s without a
send); the source offsets could then be committed before the state they produced is durable,
and a worker killed at that moment would lose a state change and double-count or drop deltas.
Faust's ``Table.send_changelog`` waits correctly but costs about 100 µs of Python per record,
one record per record state a batch touched: most of a busy worker's time.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from ...metrics.state import Key
from ..embedded.state import dumps_state, loads_state
from .bulk import Changelog, FaustChangelog

__all__ = ["GroupedStore", "by_group", "by_record"]

_POSITION = "@"  # table entries "@<partition>": the next input offset to apply


def by_record(key: Key) -> Hashable:
    """Phase 1: ``("r", source, object, id)`` and ``("q", source, object, id)`` share an entry."""
    return key[1:4]


def by_group(key: Key) -> Hashable:
    """Phase 2: every key (buckets, reported values, applied markers) has its group at 2."""
    group: Hashable = key[2]
    return group


class GroupedStore:
    """A state store over a Faust table, one table entry per ``entry_of(key)``.

    Reads go through a cache that lives for one batch. :meth:`stage` sets the entries changed
    so far aside with an event of the Kafka partition they belong to; :meth:`commit` writes
    them under that event (Faust puts a table's changelog records and store partitions by the
    partition of the event being processed), and returns once Kafka acknowledged them.
    """

    def __init__(
        self,
        table: Any,
        entry_of: Callable[[Key], Hashable],
        changelog: Changelog | None = None,
    ) -> None:
        self.table = table
        self.changelog: Changelog = changelog or FaustChangelog(table)
        self.entry_of = entry_of
        self.cache: dict[str, dict[Key, Any]] = {}
        self.dirty: set[str] = set()
        self.staged: list[tuple[Any, dict[str, dict[Key, Any]]]] = []
        self.positions: dict[int, tuple[Any, int]] = {}

    def _entry(self, key: Key) -> str:
        return repr(self.entry_of(key))

    def _load(self, entry: str) -> dict[Key, Any]:
        found = self.cache.get(entry)
        if found is None:
            raw = self.table.get(entry)
            found = {} if raw is None else dict(loads_state(raw))
            self.cache[entry] = found
        return found

    def get(self, key: Key) -> Any | None:
        return self._load(self._entry(key)).get(key)

    def put(self, key: Key, value: Any) -> None:
        entry = self._entry(key)
        self._load(entry)[key] = value
        self.dirty.add(entry)

    def delete(self, key: Key) -> None:
        entry = self._entry(key)
        values = self._load(entry)
        if key in values:
            del values[key]
            self.dirty.add(entry)

    def items(self) -> Iterator[tuple[Key, Any]]:
        for entry in list(self.table.keys()):
            if not entry.startswith(_POSITION):
                yield from list(self._load(entry).items())
        for entry, values in list(self.cache.items()):
            if entry not in self.table:
                yield from list(values.items())

    def stage(self, event: Any) -> None:
        """Set the entries changed so far aside, to be committed under ``event``'s partition."""
        if self.dirty:
            self.staged.append((event, {e: self.cache[e] for e in self.dirty}))
            self.dirty = set()

    def position(self, partition: int) -> int | None:
        """The next offset of the input ``partition`` to apply (see :mod:`.order`)."""
        staged = self.positions.get(partition)
        if staged is not None:
            return staged[1]
        raw = self.table.get(f"{_POSITION}{partition}")
        return None if raw is None else int(loads_state(raw))

    def set_position(self, partition: int, offset: int, event: Any = None) -> None:
        """Committed after the entries, so a stored position never runs ahead of the state."""
        self.positions[partition] = (event, offset)

    async def commit(self, *, positions: bool = True) -> None:
        """Write the staged entries and, behind them in each partition, the input positions
        (unless ``positions=False``: they stay staged); return once Kafka acknowledged them.

        The changelog (:mod:`.bulk`) appends a partition's records in order and never makes
        the last one durable before the others, so a stored position never runs ahead of the
        state it guards (a partition's entries and position usually travel as one Kafka record
        batch, appended whole or not at all)."""
        from faust.streams import _current_event

        if self.dirty:
            raise RuntimeError("GroupedStore.commit: writes made after the last stage()")
        records: dict[int, list[tuple[str, bytes | None]]] = {}
        data = self.table.data
        for event, entries in self.staged:
            out = records.setdefault(event.message.partition, [])
            token = _current_event.set(weakref.ref(event))  # the store partition (RocksDB)
            try:
                for entry, values in entries.items():
                    if values:
                        raw = dumps_state(values)
                        data[entry] = raw
                        out.append((entry, raw))
                    elif entry in data:
                        del data[entry]
                        out.append((entry, None))
            finally:
                _current_event.reset(token)
        self.staged.clear()
        self.cache.clear()
        if positions:
            for partition, (event, offset) in self.positions.items():
                raw = dumps_state(offset)
                entry = f"{_POSITION}{partition}"
                if event is None:
                    data[entry] = raw
                else:
                    position_token = _current_event.set(weakref.ref(event))
                    try:
                        data[entry] = raw
                    finally:
                        _current_event.reset(position_token)
                records.setdefault(partition, []).append((entry, raw))
            self.positions.clear()
        if any(records.values()):
            await self.changelog.write(records)

    def rollback(self) -> None:
        self.positions.clear()
        self.staged.clear()
        self.dirty.clear()
        self.cache.clear()
