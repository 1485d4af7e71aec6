"""The engine's state in SQLite: a :class:`~crm_pulse.metrics.state.StateStore`.

The engine reads and writes its state many times per event, so the store keeps every entry in
memory and remembers which keys changed; :meth:`SQLiteStore.flush` writes exactly those inside
the caller's transaction (the consumer's, together with the log offset and the outbox). If that
transaction fails the process stops rather than go on with memory ahead of disk; a restart
loads the committed state.

Keys are tuples of ints and strings; values are lists, dicts and tuples of ints, strings,
dates and None. They are stored with pickle, and read back with an unpickler that refuses
anything but those types, so the file cannot be used to run code.
"""

from __future__ import annotations

import datetime
import io
import pickle
import sqlite3
from collections.abc import Iterator
from typing import Any

from ..metrics.state import Key

__all__ = ["SQLiteStore"]

_ALLOWED = {("datetime", "date")}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return datetime.date
        raise pickle.UnpicklingError(f"state holds a forbidden type {module}.{name}")


def _loads(data: bytes) -> Any:
    return _SafeUnpickler(io.BytesIO(data)).load()


def _dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=5)


class SQLiteStore:
    """All engine state in memory, persisted key by key at each :meth:`flush`."""

    def __init__(self) -> None:
        self._data: dict[Key, Any] = {}
        self._dirty: set[Key] = set()

    # StateStore protocol --------------------------------------------------------------
    def get(self, key: Key) -> Any | None:
        return self._data.get(key)

    def put(self, key: Key, value: Any) -> None:
        self._data[key] = value
        self._dirty.add(key)

    def delete(self, key: Key) -> None:
        if self._data.pop(key, None) is not None:
            self._dirty.add(key)

    def items(self) -> Iterator[tuple[Key, Any]]:
        return iter(list(self._data.items()))

    def __len__(self) -> int:
        return len(self._data)

    # persistence ----------------------------------------------------------------------
    def load(self, conn: sqlite3.Connection) -> None:
        """Replace memory with the committed state; ValueError naming the first bad entry."""
        data: dict[Key, Any] = {}
        for text, k, v in conn.execute("SELECT k, key, value FROM state"):
            try:
                key, value = _loads(k), _loads(v)
            except Exception as exc:
                raise ValueError(f"key {str(text)[:60]!r}: not readable ({exc})") from None
            if not isinstance(key, tuple) or not key or not isinstance(key[0], str):
                raise ValueError(f"key {str(text)[:60]!r}: not a state key")
            if not isinstance(value, int | float | list | dict | tuple | str | datetime.date):
                raise ValueError(f"key {str(text)[:60]!r}: a value of type {type(value).__name__}")
            data[key] = value
        self._data = data
        self._dirty.clear()

    @property
    def pending(self) -> int:
        """Keys changed since the last flush."""
        return len(self._dirty)

    def flush(self, conn: sqlite3.Connection) -> int:
        """Write the changed keys in the caller's transaction; returns how many."""
        puts: list[tuple[str, bytes, bytes]] = []
        deletes: list[tuple[str]] = []
        for key in self._dirty:
            text = repr(key)
            value = self._data.get(key)
            if value is None:
                deletes.append((text,))
            else:
                puts.append((text, _dumps(key), _dumps(value)))
        if puts:
            conn.executemany(
                "INSERT INTO state (k, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (k) DO UPDATE SET value = excluded.value",
                puts,
            )
        if deletes:
            conn.executemany("DELETE FROM state WHERE k = ?", deletes)
        n = len(self._dirty)
        self._dirty.clear()
        return n
