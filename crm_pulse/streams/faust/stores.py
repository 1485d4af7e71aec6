"""Engine state in Faust tables: a :class:`~crm_pulse.metrics.state.StateStore` over a table.

A table maps ``repr(key)`` to the pickled ``(key, value)`` pair (read back with the restricted
unpickler of :mod:`crm_pulse.streams.state`). :class:`BufferedStore` holds an event's writes
until :meth:`~BufferedStore.commit`, so an agent can send its output (and wait for Kafka's
acknowledgement) *before* its state changes: a crash in between re-processes the event from the
old state and sends the same output again, which the next stage recognises as a repeat.
"""

from __future__ import annotations

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
    """Reads through to ``base``; writes wait in memory until :meth:`commit`."""

    def __init__(self, base: TableStore) -> None:
        self.base = base
        self.pending: dict[Key, Any] = {}

    def get(self, key: Key) -> Any | None:
        if key in self.pending:
            value = self.pending[key]
            return None if value is _DELETED else value
        return self.base.get(key)

    def put(self, key: Key, value: Any) -> None:
        self.pending[key] = value

    def delete(self, key: Key) -> None:
        self.pending[key] = _DELETED

    def items(self) -> Iterator[tuple[Key, Any]]:
        seen = set()
        for key, value in self.pending.items():
            seen.add(key)
            if value is not _DELETED:
                yield key, value
        for key, value in self.base.items():
            if key not in seen:
                yield key, value

    def commit(self) -> None:
        for key, value in self.pending.items():
            if value is _DELETED:
                self.base.delete(key)
            else:
                self.base.put(key, value)
        self.pending.clear()

    def rollback(self) -> None:
        self.pending.clear()
