"""The group index (``crm_pulse.metrics.groupindex``): an explanation of (metric, window, group)
reads that group's records only, and says exactly what an explanation over every record says.

The index is kept by the runtime's store as records change; it must always equal an index built
from the state afresh (whatever was applied, deleted, re-created, applied out of order), and
the rows it persists must equal it too."""

from __future__ import annotations

import random
import sqlite3
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_pulse.metrics import Engine, build_catalog
from crm_pulse.metrics.explain import Explanation, explain
from crm_pulse.metrics.groupindex import GroupIndex, term_hash
from crm_pulse.streams.embedded.groups import SCHEMA, write_index
from crm_pulse.streams.embedded.state import SQLiteStore
from crm_pulse.streams.explain import explain_store, record_states

from .test_property import DAY, T0, WINDOWS, history, shuffled


class NoScan(SQLiteStore):
    """A store whose full scans are counted (the reads under test must make none)."""

    scans = 0

    def items(self):  # type: ignore[no-untyped-def]
        self.scans += 1
        return super().items()


def _conn() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.executescript(
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE state (k TEXT PRIMARY KEY, key BLOB, value BLOB) WITHOUT ROWID;" + SCHEMA
    )
    return conn


def _rows(conn: sqlite3.Connection) -> set[tuple[int, str]]:
    return set(conn.execute("SELECT term, k FROM record_groups").fetchall())


def _same(a: Explanation, b: Explanation) -> None:
    assert a.value == b.value
    assert a.measures == b.measures
    assert a.contributions == b.contributions


def _questions(engine: Engine, as_of: int, rng: random.Random) -> list[tuple[str, str, Any]]:
    rows = [r for r in engine.report(as_of) if "." not in r.metric]
    picked = [(r.metric, r.window.label, r.group) for r in rng.sample(rows, min(10, len(rows)))]
    # groups with no data, a stage (its stays come from the history), and a company-wide value
    picked += [
        ("won_revenue", "2026-02", ("owner_id", "nobody")),
        ("stage_duration_days", "2026-Q1", ("stage", "negotiation")),
        ("stage_duration_days", "2026-Q1", ("stage", "qualification")),
        ("won_revenue", "2026-Q1", ()),
        ("win_rate", "2026", ("owner_id", "u1")),
    ]
    return picked


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), order=st.integers(0, 10**6))
def test_the_index_kept_as_records_change_equals_one_built_afresh_and_explains_alike(
    seed: int, order: int
) -> None:
    catalog = build_catalog()
    index = GroupIndex(catalog)
    store = NoScan(index)
    engine = Engine(catalog, store, windows=WINDOWS)
    conn = _conn()
    write_index(conn, index)
    rng = random.Random(order)
    now = T0 + 40 * DAY
    engine.advance(now)
    events = shuffled(history(seed), order)
    i = 0
    while i < len(events):
        step = rng.randint(1, 15)
        engine.apply_all(events[i : i + step])
        i += step
        store.flush(conn)  # the rows that moved, as the runtime writes them with each batch
        fresh = GroupIndex(catalog)
        fresh.build(store.items())
        assert index.by_term == fresh.by_term
        assert {o: s for o, s in index.by_object.items() if s} == {
            o: s for o, s in fresh.by_object.items() if s
        }
        assert _rows(conn) == {(term_hash(t), repr(k)) for t, k in fresh.rows()}
    every = list(record_states(catalog, store.items()))
    for metric, window, group in _questions(engine, now, rng):
        scans = store.scans
        got = explain_store(catalog, store, index, metric, window, group, now)
        assert store.scans == scans  # no scan of the state
        _same(got, explain(catalog, every, metric, window, group, now, states=True))


def test_a_group_s_explanation_reads_its_records_only() -> None:
    """10 owners with 30 deals each and 1,000 deals of another owner: explaining one owner's
    value reads that owner's 30 records (the reads are counted), not the 1,300."""
    from crm_pulse.metrics import Event

    catalog = build_catalog()
    index = GroupIndex(catalog)
    reads: list[Any] = []

    class Counted(SQLiteStore):
        def get(self, key):  # type: ignore[no-untyped-def]
            reads.append(key)
            return super().get(key)

    store = Counted(index)
    engine = Engine(catalog, store, windows=WINDOWS)
    events = []
    for n in range(1300):
        owner = f"u{n % 10}" if n < 300 else "big"
        events.append(
            Event.model_validate(
                {
                    "source": "crm",
                    "object": "deal",
                    "id": f"d{n}",
                    "op": "upsert",
                    "version": 1,
                    "fields": {
                        "owner_id": owner,
                        "status": "won",
                        "amount": "10",
                        "closed_at": "2026-02-03T10:00:00Z",
                    },
                }
            )
        )
    engine.apply_all(events)
    reads.clear()
    got = explain_store(
        catalog, store, index, "won_revenue", "2026-02", ("owner_id", "u3"), T0 + 30 * DAY
    )
    assert len(reads) == 30
    assert len(got.contributions) == 30 and got.value == 300
