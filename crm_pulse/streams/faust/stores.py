"""Engine state in Faust tables: a :class:`~crm_pulse.metrics.state.StateStore` over a table.

A table maps ``repr(key)`` to the pickled ``(key, value)`` pair (read back with the restricted
unpickler of :mod:`crm_pulse.streams.state`). :class:`BufferedStore` holds an event's writes
until :meth:`~BufferedStore.commit`, so an agent can send its output (and wait for Kafka's
acknowledgement) *before* its state changes: a crash in between re-processes the event from the
old state and sends the same output again, which the next stage recognises as a repeat.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, MutableMapping
from typing import Any

from ...metrics.state import Key
from ..state import _dumps, _loads

__all__ = ["BufferedStore", "TableStore"]

_DELETED = object()


class TableStore:
    def __init__(self, table: MutableMapping[str, bytes]) -> None:
        self.table = table

    def get(self, key: Key) -> Any | None:
        raw = self.table.get(repr(key))
        return None if raw is None else _loads(raw)[1]

    def put(self, key: Key, value: Any) -> None:
        self.table[repr(key)] = _dumps((key, value))

    def delete(self, key: Key) -> None:
        if repr(key) in self.table:
            del self.table[repr(key)]

    def items(self) -> Iterator[tuple[Key, Any]]:
        for raw in list(self.table.values()):
            key, value = _loads(raw)
            yield key, value


class BufferedStore:
    """Reads through to ``base``; writes wait in memory until :meth:`commit`.

    An agent that works in batches calls :meth:`stage` after the part of a batch that belongs
    to one Kafka partition, with one event of that partition: at :meth:`commit` each staged
    part is written with that event as Faust's current event, so its changelog records land in
    the partition their keys belong to.
    """

    def __init__(self, base: TableStore) -> None:
        self.base = base
        self.pending: dict[Key, Any] = {}
        self.staged: list[tuple[Any, dict[Key, Any]]] = []

    def get(self, key: Key) -> Any | None:
        if key in self.pending:
            value = self.pending[key]
            return None if value is _DELETED else value
        for _, writes in reversed(self.staged):
            if key in writes:
                value = writes[key]
                return None if value is _DELETED else value
        return self.base.get(key)

    def stage(self, event: Any) -> None:
        """Set the pending writes aside, to be committed under ``event``'s partition."""
        if self.pending:
            self.staged.append((event, self.pending))
            self.pending = {}

    def put(self, key: Key, value: Any) -> None:
        self.pending[key] = value

    def delete(self, key: Key) -> None:
        self.pending[key] = _DELETED

    def items(self) -> Iterator[tuple[Key, Any]]:
        layers = [self.pending, *(w for _, w in reversed(self.staged))]
        seen: set[Key] = set()
        for layer in layers:
            for key, value in layer.items():
                if key not in seen:
                    seen.add(key)
                    if value is not _DELETED:
                        yield key, value
        for key, value in self.base.items():
            if key not in seen:
                yield key, value

    def _write(self, writes: dict[Key, Any]) -> None:
        for key, value in writes.items():
            if value is _DELETED:
                self.base.delete(key)
            else:
                self.base.put(key, value)

    def commit(self) -> None:
        """Write the staged parts (each under its own event) and then the pending writes."""
        from faust.streams import _current_event

        for event, writes in self.staged:
            token = _current_event.set(weakref.ref(event))
            try:
                self._write(writes)
            finally:
                _current_event.reset(token)
        self.staged.clear()
        self._write(self.pending)
        self.pending.clear()

    def rollback(self) -> None:
        self.pending.clear()
        self.staged.clear()
