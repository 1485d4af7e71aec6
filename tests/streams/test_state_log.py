"""The state file's two tables: ``state`` (as of the last merge) and ``state_log`` (each batch's
changes, appended). What a load reads must be exactly what was flushed, through merges,
deletes, re-inserts and selections (``report``'s range reads)."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from crm_pulse.streams.embedded import state as state_module
from crm_pulse.streams.embedded.database import Database
from crm_pulse.streams.embedded.state import MEASURE_TAGS, SQLiteStore


def _loaded(conn: sqlite3.Connection, **kwargs: Any) -> dict[Any, Any]:
    store = SQLiteStore()
    store.load(conn, **kwargs)
    return dict(store.items())


def _value(rng: random.Random, tag: str) -> Any:
    if tag in ("b", "d"):
        return [rng.randrange(-50, 50), rng.randrange(1, 9)]
    if tag == "c":
        return rng.randrange(1, 9)
    if tag == "r":
        return [rng.randrange(9), ["x", rng.randrange(100)]]
    return {rng.randrange(1000): [rng.randrange(1, 5), 1] for _ in range(rng.randrange(1, 4))}


def _key(rng: random.Random) -> tuple[Any, ...]:
    tag = rng.choice(["b", "c", "d", "dh", "r"])
    if tag == "r":
        return ("r", "crm", "deal", f"d{rng.randrange(40)}")
    group = rng.choice([(), ("owner_id", f"u{rng.randrange(4)}")])
    return (tag, rng.randrange(3), group, ("month", rng.randrange(5)))


@pytest.mark.parametrize("seed", range(6))
def test_a_load_reads_what_was_flushed_through_merges_and_deletes(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_module, "MERGE_MIN_ROWS", 7)  # merges every few batches
    rng = random.Random(seed)
    db = Database(tmp_path / "s.sqlite")
    try:
        conn = db.conn
        store = SQLiteStore()
        want: dict[Any, Any] = {}
        for _batch in range(40):
            for _ in range(rng.randrange(0, 12)):
                key = _key(rng)
                if key in want and rng.random() < 0.35:
                    store.delete(key)
                    del want[key]
                else:
                    value = _value(rng, key[0])
                    store.put(key, value)
                    want[key] = value
            db.transaction(store.flush)()
            assert _loaded(conn) == want
            measures = {rng.randrange(3)}
            selected = _loaded(conn, measures=measures)
            assert selected == {
                k: v for k, v in want.items() if k[0] in MEASURE_TAGS and k[1] in measures
            }
            company = _loaded(conn, measures=measures, company_only=True)
            assert company == {k: v for k, v in selected.items() if k[2] == ()}
        assert store.merges >= 2
        logged = conn.execute("SELECT count(*) FROM state_log").fetchone()[0]
        merged = conn.execute("SELECT count(*) FROM state").fetchone()[0]
        assert merged <= len(want) and logged < max(merged, 7) + 12
        # a store loaded from the file goes on from it: its own flushes and merges
        again = SQLiteStore()
        again.load(conn)
        for key in list(want)[:5]:
            again.delete(key)
            del want[key]
        db.transaction(lambda c: again.flush(c, merge=True))()
        assert conn.execute("SELECT count(*) FROM state_log").fetchone()[0] == 0
        assert _loaded(conn) == want
        SQLiteStore.erase(conn)
        assert _loaded(conn) == {}
    finally:
        db.close()


def test_a_batch_appends_and_leaves_the_merged_table_alone_until_a_merge_is_due(
    tmp_path: Path,
) -> None:
    """The point of the layout: a batch writes its own rows, not rows of the whole table."""
    db = Database(tmp_path / "s.sqlite")
    try:
        conn = db.conn
        store = SQLiteStore()
        for i in range(1000):
            store.put(("b", 0, ("account_id", f"a{i}"), ("month", 1)), [i, 1])
        db.transaction(lambda c: store.flush(c, merge=True))()
        assert conn.execute("SELECT count(*) FROM state").fetchone()[0] == 1000
        store.put(("b", 0, ("account_id", "a7"), ("month", 1)), [70, 2])
        store.delete(("b", 0, ("account_id", "a8"), ("month", 1)))
        db.transaction(store.flush)()
        assert conn.execute("SELECT count(*) FROM state_log").fetchone()[0] == 2
        assert store.merges == 1  # 2 rows against 1,000 merged: not due
        loaded = _loaded(conn)
        assert len(loaded) == 999 and loaded[("b", 0, ("account_id", "a7"), ("month", 1))] == [
            70,
            2,
        ]
    finally:
        db.close()
