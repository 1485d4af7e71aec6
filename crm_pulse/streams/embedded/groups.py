"""The group index in the state file: ``record_groups`` (term hash, record key text).

The runtime's store keeps a :class:`~crm_pulse.metrics.groupindex.GroupIndex` in memory and
writes what moved in it with each flush, in the batch's transaction, so the table always
describes the committed state (a kill -9 loses both or neither). ``crm-pulse explain --config``
then reads from the file only the records of the group asked about: the table's rows for the
group's terms, then those records' state rows by key (:func:`group_records`).

Meta ``group_index`` holds the index's signature (the catalog's indexed fields) and
``group_index_consumed`` the log position the table was last written at (the checkpoint's: it is
written with the state, :mod:`.checkpoints`); a table whose signature differs, or that does not
describe the state in the file (an older crm-pulse consumed further without it), is not trusted: the
runtime rewrites it at start (:func:`write_index`, from the state it loaded anyway) and a reader
falls back to reading every record.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from ...metrics.collector import collector_paused
from ...metrics.groupindex import GroupIndex, Term, term_hash
from ...metrics.state import Key

__all__ = [
    "SCHEMA",
    "group_record_keys",
    "index_current",
    "object_record_keys",
    "write_index",
    "write_index_changes",
]

SCHEMA = """
-- which records hold each group field value (the group index: crm-pulse explain)
CREATE TABLE IF NOT EXISTS record_groups (
    term  INTEGER NOT NULL,
    k     TEXT NOT NULL,
    PRIMARY KEY (term, k)
) WITHOUT ROWID;
"""

_SIGNATURE = "group_index"
_CONSUMED = "group_index_consumed"


def _mark_consumed(conn: sqlite3.Connection) -> None:
    """The table describes the state in the file: of the log up to its last checkpoint
    (``state_at``; the consumed position in a file from before checkpoints)."""
    conn.execute(
        "INSERT INTO meta (name, value) "
        "SELECT ?, coalesce((SELECT value FROM meta WHERE name = 'state_at'), "
        "(SELECT value FROM meta WHERE name = 'consumed'), '0') "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (_CONSUMED,),
    )


def write_index_changes(conn: sqlite3.Connection, index: GroupIndex) -> None:
    """Write the rows that moved since the last flush (in the caller's transaction), built
    with the cyclic garbage collector paused (:mod:`~crm_pulse.metrics.collector`: none of
    them is cyclic, and the collector's full passes walk the whole state)."""
    with collector_paused():
        _write_changes(conn, index)
    _mark_consumed(conn)


def _write_changes(conn: sqlite3.Connection, index: GroupIndex) -> None:
    added, removed = index.take_changes()
    if removed:
        conn.executemany(
            "DELETE FROM record_groups WHERE term = ? AND k = ?",
            [(index.term_hash(term), repr(key)) for term, key in removed],
        )
    if added:
        conn.executemany(
            "INSERT OR IGNORE INTO record_groups (term, k) VALUES (?, ?)",
            sorted([(index.term_hash(term), repr(key)) for term, key in added]),
        )


def write_index(conn: sqlite3.Connection, index: GroupIndex) -> int:
    """Rewrite the whole table from the index in memory (in the caller's transaction);
    returns the rows written."""
    index.forget_changes()
    conn.execute("DELETE FROM record_groups")
    rows = sorted({(term_hash(term), repr(key)) for term, key in index.rows()})
    conn.executemany("INSERT OR IGNORE INTO record_groups (term, k) VALUES (?, ?)", rows)
    conn.execute(
        "INSERT INTO meta (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (_SIGNATURE, index.signature),
    )
    _mark_consumed(conn)
    return len(rows)


def index_current(conn: sqlite3.Connection, index: GroupIndex) -> bool:
    """Whether the table describes the committed state under ``index``'s signature."""
    meta = dict(
        conn.execute(
            "SELECT name, value FROM meta WHERE name IN (?, ?, 'consumed', 'state_at')",
            (_SIGNATURE, _CONSUMED),
        ).fetchall()
    )
    if meta.get(_SIGNATURE) != index.signature:
        return False
    return bool(meta.get(_CONSUMED) == meta.get("state_at", meta.get("consumed", "0")))


def group_record_keys(conn: sqlite3.Connection, terms: list[Term]) -> set[str]:
    """Key texts of the records holding every term (a superset: hashes may collide)."""
    found: set[str] | None = None
    for term in terms:
        rows = conn.execute("SELECT k FROM record_groups WHERE term = ?", (term_hash(term),))
        keys = {row[0] for row in rows}
        found = keys if found is None else found & keys
        if not found:
            return set()
    return found or set()


def object_record_keys(conn: sqlite3.Connection, obj: str) -> Iterator[str]:
    """Key texts of every record of ``obj`` in the state table: a range read per source
    (records are keyed ``("r", source, object, id)``), the sources found by seeking from one
    to the next, so other objects' records and every other entry are never read."""
    start = "('r', "
    end = "('r'-"  # just past every record key's text: "('r', ..."
    while True:
        row = conn.execute(
            "SELECT k FROM state WHERE k >= ? AND k < ? ORDER BY k LIMIT 1", (start, end)
        ).fetchone()
        if row is None:
            return
        source = _source_of(row[0])
        if source is None:  # not a text this code writes: step past it
            start = row[0] + "\x00"
            continue
        prefix = repr(("r", source, obj))[:-1] + ", "
        high = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        for (k,) in conn.execute("SELECT k FROM state WHERE k >= ? AND k < ?", (prefix, high)):
            yield k
        after = repr(("r", source))[:-1] + ","  # every key of this source starts with it + " "
        start = after + chr(ord(" ") + 1)


def _source_of(text: str) -> str | None:
    """The source of a record key's text (``"('r', 'crm', 'deal', 'd1')"`` -> ``'crm'``)."""
    import ast

    try:
        key: Key = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(key, tuple) or len(key) < 2 or not isinstance(key[1], str):
        return None
    return key[1]
