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

import contextlib
import datetime
import io
import pickle
import sqlite3
from collections.abc import Callable, Collection, Generator, Iterator
from typing import Any

from ...metrics.groupindex import GroupIndex
from ...metrics.state import Key
from .groups import write_index_changes

__all__ = ["MEASURE_TAGS", "SQLiteStore", "dumps_state", "loads_state"]

MEASURE_TAGS = ("b", "c", "d", "dh", "dm", "dc", "am", "at", "ai", "cs", "p", "pd", "pr", "f")
"""Tags of the entries keyed by measure (``(tag, measure, ...)``): what a report reads. The
others are records (``r``, one per record: most of the state) and last reported values
(``o``)."""


def _prefix_range(prefix: str) -> tuple[str, str]:
    """[low, high) of the stored key texts starting with ``prefix``."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


PROGRESS_EVERY = 10_000
"""Entries between two progress reports of :meth:`SQLiteStore.load`."""

_ALLOWED = {("datetime", "date")}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return datetime.date
        raise pickle.UnpicklingError(f"state holds a forbidden type {module}.{name}")


def loads_state(data: bytes) -> Any:
    """A state key or value from its stored bytes (only the types state holds)."""
    return _SafeUnpickler(io.BytesIO(data)).load()


_PROTOCOL = 5


def dumps_state(value: Any) -> bytes:
    """The stored bytes of a state key or value (the Faust runtime's tables use them too)."""
    return pickle.dumps(value, protocol=_PROTOCOL)


_PAIR_TAGS = frozenset(("b", "d"))
"""Entries whose value is ``[value, contributions]``."""
_DICT_TAGS = frozenset(("dh", "dm", "dc", "am", "at", "ai", "cs", "p", "pd", "pr", "f"))
_ALL_MEASURE_TAGS = frozenset(MEASURE_TAGS)


def _ints(value: Any, n: int) -> bool:
    return (
        type(value) is list
        and len(value) == n
        and all(type(x) is int for x in value)  # bool is not an int here
    )


def entry_problem(key: Any, value: Any) -> str | None:
    """Why a state entry does not have the shape the engine reads (None: it has).

    Checked as each entry is loaded, so a damaged state fails at start naming its key, at the
    cost of a few type checks per entry (it used to take a full report of the catalog after
    the load). The containers are checked, and one item of each dict: what a hand edit or a
    damaged file gets wrong; the engine's contents are not re-derived."""
    if type(key) is not tuple or not key or type(key[0]) is not str:
        return "not a state key"
    tag = key[0]
    if tag in _ALL_MEASURE_TAGS or tag == "o":
        if len(key) < 3 or type(key[2]) is not tuple:
            return "not a state key (no group)"
        if tag != "o" and type(key[1]) is not int:
            return "not a state key (the measure is not a number)"
    if tag in _PAIR_TAGS:
        return None if _ints(value, 2) else f"expected [value, count], got {_show(value)}"
    if tag == "o":
        ok = _ints(value, 2) and value[1] != 0
        return None if ok else f"expected [numerator, denominator], got {_show(value)}"
    if tag == "c":
        return None if type(value) is int else f"expected a count, got {_show(value)}"
    if tag in _DICT_TAGS:
        if type(value) is not dict:
            return f"expected a mapping, got {_show(value)}"
        for item in value.values():
            if tag in ("dh", "dm", "am", "at", "f"):
                if type(item) not in (list, dict):
                    return f"expected a mapping of lists, got {_show(value)}"
            elif type(item) is not int:
                return f"expected a mapping of counts, got {_show(value)}"
            break
        return None
    if tag == "r":
        ok = type(value) is list and len(value) >= 2
        return None if ok else f"expected a record, got {_show(value)}"
    return None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def share_strings(value: Any, seen: dict[Any, Any]) -> Any:
    """``value`` with every string, and every tuple of strings (a group such as
    ``("owner_id", "u3")``), replaced by the first equal one in ``seen``.

    Each stored key and value is a pickle of its own, so state read back holds a separate copy
    of ``"crm"`` in every record's key, of every owner id in every bucket key, and so on: the
    process doubled its memory after a restart at 10^6 records. A run that built the state
    from events shared them (the parser interns field names and the engine reuses its tuples).
    """
    kind = type(value)
    if kind is str:
        return seen.setdefault(value, value)
    if kind is tuple:
        items = tuple(share_strings(x, seen) for x in value)
        if all(type(x) is str for x in items):
            return seen.setdefault(items, items)
        return items
    if kind is list:
        return [share_strings(x, seen) for x in value]
    if kind is dict:
        return {share_strings(k, seen): share_strings(v, seen) for k, v in value.items()}
    return value


def _first(item: tuple[str, Key]) -> str:
    return item[0]


class SQLiteStore:
    """All engine state in memory, persisted key by key at each :meth:`flush`.

    With a :class:`~crm_pulse.metrics.groupindex.GroupIndex` (the runtime's store), it keeps
    which records make each group, in memory (built as the state loads) and in the file's
    ``record_groups`` table (written with each flush, see :mod:`.groups`), so an explanation
    reads one group's records instead of every record."""

    def __init__(self, index: GroupIndex | None = None) -> None:
        self._data: dict[Key, Any] = {}
        self._dirty: set[Key] = set()
        self.index = index

    # StateStore protocol --------------------------------------------------------------
    def get(self, key: Key) -> Any | None:
        return self._data.get(key)

    def put(self, key: Key, value: Any) -> None:
        data = self._data
        if key[0] == "r" and self.index is not None:
            self.index.move(key, data.get(key), value)
        data[key] = value
        self._dirty.add(key)

    def delete(self, key: Key) -> None:
        old = self._data.pop(key, None)
        if old is not None:
            if key[0] == "r" and self.index is not None:
                self.index.move(key, old, None)
            self._dirty.add(key)

    def items(self) -> Iterator[tuple[Key, Any]]:
        return iter(list(self._data.items()))

    def __len__(self) -> int:
        return len(self._data)

    # persistence ----------------------------------------------------------------------
    def load(
        self,
        conn: sqlite3.Connection,
        *,
        measures: Collection[int] | None = None,
        company_only: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Replace memory with the committed state; ValueError naming the first bad entry.

        Equal strings are shared as they are read (:func:`share_strings`).

        ``measures``: load only what a report of these measures reads (their bucket entries,
        range reads of the key index), not the records nor the last reported values; ``()``:
        every measure's entries. For ``crm-pulse report``: it then costs what it reads.
        ``company_only`` (with ``measures``): only their company-wide entries.
        ``progress(done, total)``: entries read, every :data:`PROGRESS_EVERY` (the whole
        state only)."""
        step: Callable[[int], None] | None = None
        if progress is not None and measures is None:
            total = int(conn.execute("SELECT count(*) FROM state").fetchone()[0])
            report = progress
            report(0, total)

            def step(n: int) -> None:
                report(n, total)

        with contextlib.closing(self._rows(conn, measures, company_only)) as rows:
            self._data = self._read(rows, step)
        self._dirty.clear()
        if self.index is not None:
            self.index.build(self._data.items())

    @staticmethod
    def _read(
        rows: Iterator[tuple[str, bytes, bytes]], progress: Callable[[int], None] | None = None
    ) -> dict[Key, Any]:
        data: dict[Key, Any] = {}
        seen: dict[Any, Any] = {}
        for n, (text, k, v) in enumerate(rows):
            if progress is not None and not n % PROGRESS_EVERY:
                progress(n)
            try:
                key, value = loads_state(k), loads_state(v)
            except Exception as exc:
                raise ValueError(f"key {str(text)[:60]!r}: not readable ({exc})") from None
            if not isinstance(key, tuple) or not key or not isinstance(key[0], str):
                raise ValueError(f"key {str(text)[:60]!r}: not a state key")
            if not isinstance(value, int | float | list | dict | tuple | str | datetime.date):
                raise ValueError(f"key {str(text)[:60]!r}: a value of type {type(value).__name__}")
            problem = entry_problem(key, value)
            if problem is not None:
                raise ValueError(f"key {str(text)[:60]!r}: {problem}")
            data[share_strings(key, seen)] = share_strings(value, seen)
        if progress is not None:
            progress(len(data))
        return data

    @staticmethod
    def _rows(
        conn: sqlite3.Connection, measures: Collection[int] | None, company_only: bool
    ) -> Generator[tuple[str, bytes, bytes], None, None]:
        if measures is None:
            yield from conn.execute("SELECT k, key, value FROM state")
            return
        # the company-wide group is the empty tuple: its keys read "('b', 3, ()" then "," or ")"
        group = "()" if company_only else ""
        prefixes = (
            [f"('{tag}', {m}, {group}" for tag in MEASURE_TAGS for m in sorted(measures)]
            if measures
            else [f"('{tag}', " for tag in MEASURE_TAGS]
        )
        query = "SELECT k, key, value FROM state WHERE k >= ? AND k < ?"
        for prefix in prefixes:
            yield from conn.execute(query, _prefix_range(prefix))
        # and anything that is not a state key's text at all: refused by the checks of load
        yield from conn.execute("SELECT k, key, value FROM state WHERE k < ?", ("('",))
        yield from conn.execute("SELECT k, key, value FROM state WHERE k >= ?", ("((",))

    @property
    def pending(self) -> int:
        """Keys changed since the last flush."""
        return len(self._dirty)

    def flush(self, conn: sqlite3.Connection) -> int:
        """Write the changed keys in the caller's transaction; returns how many.

        In key order: the table is a B-tree on the key's text, so the rows of one batch are
        written leaf page after leaf page instead of in random order (measured: a third less
        time in the statement once the state outgrows SQLite's page cache). Each row is pickled
        as SQLite takes it (a checkpoint's millions of rows are never all in memory at once)."""
        deletes: list[tuple[str]] = []
        get, dumps, protocol = self._data.get, pickle.dumps, _PROTOCOL
        rows = sorted([(repr(key), key) for key in self._dirty], key=_first)

        def puts() -> Iterator[tuple[str, bytes, bytes]]:
            # one row at a time: a checkpoint of millions of entries never holds their bytes
            for text, key in rows:
                value = get(key)
                if value is None:
                    deletes.append((text,))
                else:
                    yield text, dumps(key, protocol), dumps(value, protocol)

        conn.executemany(
            "INSERT INTO state (k, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (k) DO UPDATE SET value = excluded.value",
            puts(),
        )
        if deletes:
            conn.executemany("DELETE FROM state WHERE k = ?", deletes)
        if self.index is not None:
            write_index_changes(conn, self.index)
        n = len(self._dirty)
        self._dirty.clear()
        return n
