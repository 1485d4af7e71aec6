"""The engine's state, behind a small key-value interface.

Keys are tuples whose first element names a kind of entry (records, buckets, ...); values are
ints, lists, dicts and tuples of JSON-able scalars. The engine mutates a value it got and then
``put``s it back, so a store may hand out live objects or copies (a store that serialises). The
embedded runtime backs this with SQLite, the Faust runtime with Faust tables; the engine does not
know which, with one exception: on a plain :class:`MemoryStore` (exactly that class, not a
subclass) it reads and writes the dict directly and skips the put-backs of values it mutated in
place, the cost of most events in a replay.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

__all__ = ["Key", "MemoryStore", "StateStore"]

Key = tuple[Any, ...]


class StateStore(Protocol):
    """What the engine needs from a place to keep its state."""

    def get(self, key: Key) -> Any | None:
        """The value at ``key``, or None."""

    def put(self, key: Key, value: Any) -> None:
        """Set ``key`` to ``value``."""

    def delete(self, key: Key) -> None:
        """Remove ``key`` if present."""

    def items(self) -> Iterator[tuple[Key, Any]]:
        """Every entry (used for reports and rebuilds, never on the per-event path)."""


class MemoryStore:
    """A dict: the state of ``replay``, tests and benchmarks."""

    def __init__(self) -> None:
        self.data: dict[Key, Any] = {}

    def get(self, key: Key) -> Any | None:
        return self.data.get(key)

    def put(self, key: Key, value: Any) -> None:
        self.data[key] = value

    def delete(self, key: Key) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterator[tuple[Key, Any]]:
        return iter(list(self.data.items()))

    def __len__(self) -> int:
        return len(self.data)
