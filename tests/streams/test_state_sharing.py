"""State read back from SQLite shares its strings, like the state a run builds from events (a
restart at 10^6 records doubled the process's memory with separate copies of each string)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from crm_pulse.streams.embedded.database import Database
from crm_pulse.streams.embedded.state import SQLiteStore


def test_state_read_back_shares_equal_strings_and_groups(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.sqlite")
    store = SQLiteStore()
    for i in range(3):
        store.put(("r", "crm", "deal", str(i)), [1, ("won", f"u{i % 2}", 100), None, None])
        store.put(("b", 4, ("owner_id", f"u{i % 2}"), ("month", 600 + i)), [100, 1])
    expected = dict(store.items())

    def flush() -> None:
        conn: sqlite3.Connection = db.conn
        conn.execute("BEGIN")
        store.flush(conn)
        conn.execute("COMMIT")

    db.call(flush)
    again = SQLiteStore()
    db.call(lambda: again.load(db.conn))
    db.close()

    assert dict(again.items()) == expected
    keys = [k for k, _ in again.items()]
    records = [k for k in keys if k[0] == "r"]
    assert len({id(k[1]) for k in records}) == 1  # one "crm"
    assert len({id(k[2]) for k in records}) == 1  # one "deal"
    buckets = [k for k in keys if k[0] == "b"]
    assert len({id(k[2]) for k in buckets}) == 2  # one tuple per group, u0 and u1
    values = [v for k, v in again.items() if k[0] == "r"]
    assert len({id(v[1][0]) for v in values}) == 1  # one "won" in the record states
    assert {id(v[1][1]) for v in values} == {id(k[2][1]) for k in buckets}  # owner ids too
