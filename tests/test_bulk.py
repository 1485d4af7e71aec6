"""The bulk replay (final states first, contributions once) == applying every event in turn."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_pulse.config import load_config_text
from crm_pulse.errors import DataError
from crm_pulse.metrics import Engine, Event, build_catalog, write_rows
from crm_pulse.metrics.bulk import FinalStates
from crm_pulse.metrics.catalog import Catalog
from crm_pulse.metrics.jsonl import LineError, read_events_file
from crm_pulse.metrics.replay import replay, replay_file
from tests.test_property import DAY, T0, WINDOWS, history, shuffled

CATALOG = build_catalog()
DEALS = load_config_text(
    """
timezone: Europe/Paris
connectors: []
metrics:
  enable: [won_revenue, deals_won, win_rate, avg_deal_size, open_pipeline_value, nps]
""",
    resolve_secrets=False,
).catalog()
"""Deals with neither a stage history nor a change register: only their winning version."""


def one_by_one(catalog: Catalog, events: list[Event], as_of: int) -> Engine:
    """The incremental path: every event applied as a diff, in the given order."""
    engine = Engine(catalog, windows=WINDOWS)
    engine.advance(as_of)
    engine.apply_all(events)
    return engine


def output(catalog: Catalog, engine: Engine, as_of: int, fmt: str) -> str:
    """What ``crm-pulse replay --format fmt`` prints."""
    out = io.StringIO()
    people = fmt != "jsonl"
    write_rows(catalog, engine.iter_report(as_of, for_people=people), fmt, out, presorted=people)
    return out.getvalue()


def assert_same_state(bulk: Engine, each: Engine, catalog: Catalog = CATALOG) -> None:
    """Every entry equal, but the newest delete version of records whose metrics never read it
    (no stage history, no change register): the incremental path skips a stale delete; and
    an empty stage history is one whether a delete emptied it or none was ever kept (the
    incremental path itself gives either, depending on the order)."""
    a, b = dict(bulk.store.items()), dict(each.store.items())
    assert {k for k in a if k[0] != "r"} == {k for k in b if k[0] != "r"}
    for key, value in b.items():
        if key[0] == "r":
            continue
        assert a[key] == value, key
    records = {k for k in b if k[0] == "r"}
    assert {k for k in a if k[0] == "r"} == records
    for key in records:
        mine, theirs = a[key], b[key]
        full = key[2] in catalog.stays or "modified_by" in catalog.reads[key[2]]
        mine, theirs = [*mine], [*theirs]
        mine[3], theirs[3] = mine[3] or None, theirs[3] or None
        if not full:
            mine, theirs = mine[:2] + mine[3:], theirs[:2] + theirs[3:]
        assert mine == theirs, key


def lines_of(events: list[Event]) -> list[str]:
    out = []
    for e in events:
        raw: dict[str, Any] = {
            "source": e.source,
            "object": e.object,
            "id": e.id,
            "op": e.op,
            "version": e.version,
        }
        if e.op == "upsert":
            raw["fields"] = e.fields
        out.append(json.dumps(raw) + "\n")
    return out


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10**6),
    order=st.integers(0, 10**6),
    as_of_day=st.integers(-5, 200),
    deals_only=st.booleans(),
)
def test_bulk_replay_equals_event_by_event_apply(
    seed: int, order: int, as_of_day: int, deals_only: bool
) -> None:
    """Random histories of every object (out of order, duplicated, equal versions with other
    contents, deletes, re-creations, stage changes, change registers), the full catalog (or
    one whose deals keep only their winning version): the same ``crm-pulse replay`` output
    in every format, the same state."""
    catalog = DEALS if deals_only else CATALOG
    events = shuffled(history(seed), order)
    as_of = T0 + as_of_day * DAY
    each = one_by_one(catalog, events, as_of)
    bulk = replay(catalog, events, as_of, windows=WINDOWS)
    for fmt in ("jsonl", "csv", "table"):
        assert output(catalog, bulk, as_of, fmt) == output(catalog, each, as_of, fmt)
    assert_same_state(bulk, each, catalog)
    # what ``crm-pulse replay`` keeps: no record state, the same report and buckets
    report_only = replay(catalog, events, as_of, windows=WINDOWS, records=False)
    assert output(catalog, report_only, as_of, "jsonl") == output(catalog, each, as_of, "jsonl")
    kept = dict(report_only.store.items())
    assert kept == {k: v for k, v in each.store.items() if k[0] != "r"}
    # the same from the JSONL text, with config events given apart
    split = random.Random(order).randrange(len(events) + 1)
    config, rest = events[:split], events[split:]
    final = FinalStates(catalog)
    final.add_all(config)
    final.add_lines(lines_of(rest))
    from_lines = Engine(catalog, windows=WINDOWS)
    from_lines.advance(as_of)
    from_lines.load_final_states(final.states())
    assert output(catalog, from_lines, as_of, "jsonl") == output(catalog, each, as_of, "jsonl")
    assert_same_state(from_lines, each, catalog)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), order=st.integers(0, 10**6))
def test_the_fold_does_not_depend_on_the_order(seed: int, order: int) -> None:
    events = history(seed)
    as_of = T0 + 200 * DAY
    first = replay(CATALOG, shuffled(events, order), as_of, windows=WINDOWS)
    again = replay(CATALOG, shuffled(events, order + 1), as_of, windows=WINDOWS)
    assert output(CATALOG, first, as_of, "jsonl") == output(CATALOG, again, as_of, "jsonl")
    assert_same_state(first, one_by_one(CATALOG, events, as_of))


BAD = [
    "\n",
    "   \n",
    "not json\n",
    '{"source": "s", "object": "deal", "id": "x", "op": "upsert", "version": "7",'
    ' "fields": {"status": "won", "amount": "5", "closed_at": "2026-02-01T00:00:00Z"}}\n',
    '{"source": "s", "object": "deal", "id": 12, "op": "upsert", "version": 3,'
    ' "fields": {"status": "won", "amount": "5", "closed_at": "2026-02-01T00:00:00Z"}}\n',
    '{"source": "s", "object": "deal", "id": "y", "op": "upsert", "version": 1,'
    ' "fields": {"status": "maybe"}}\n',
    '{"source": "s", "object": "deal", "id": "y", "op": "upsert", "version": 1,'
    ' "fields": {"amount": "NaN"}}\n',
    '{"source": "s", "object": "deal", "id": "z", "op": "remove", "version": 1}\n',
    "[1, 2]\n",
    '{"source": "s", "object": "deal", "id": "w", "op": "upsert", "version": 2, "fields": null}\n',
]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), order=st.integers(0, 10**6))
def test_replay_file_reads_as_read_events_file(
    tmp_path_factory: Any, seed: int, order: int
) -> None:
    """Good lines, lines only the full validation reads (string versions, integer ids) and bad
    lines mixed: ``replay_file`` gives the report and the line errors of the former
    ``read_events_file`` + event-by-event path."""
    rng = random.Random(order)
    lines = lines_of(shuffled(history(seed), order))
    for bad in BAD:
        lines.insert(rng.randrange(len(lines) + 1), bad)
    path = Path(tmp_path_factory.mktemp("bulk")) / "events.jsonl"
    path.write_text("".join(lines))
    as_of = T0 + 150 * DAY
    want_errors: list[LineError] = []
    each = one_by_one(CATALOG, list(read_events_file(path, errors=want_errors)), as_of)
    got_errors: list[LineError] = []
    bulk = replay_file(CATALOG, path, as_of, windows=WINDOWS, errors=got_errors)
    assert got_errors == want_errors
    report_only = replay_file(CATALOG, path, as_of, windows=WINDOWS, records=False)
    assert output(CATALOG, report_only, as_of, "csv") == output(CATALOG, each, as_of, "csv")
    assert len(want_errors) == 6  # blank lines are no errors; the version "7", the id 12 read
    assert output(CATALOG, bulk, as_of, "jsonl") == output(CATALOG, each, as_of, "jsonl")
    assert_same_state(bulk, each)


def test_replay_file_strict_and_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(BAD[2] + BAD[7])
    with pytest.raises(DataError) as raised:
        replay_file(CATALOG, path, T0, strict=True)
    assert str(raised.value) == "line 1: not valid JSON: Expecting value at column 1"
    with pytest.raises(DataError, match="cannot read"):
        replay_file(CATALOG, tmp_path / "missing.jsonl", T0)


def test_a_record_s_versions_cost_one_contribution_set() -> None:
    """Ten versions of one deal reach the buckets once: the engine loads one record."""
    events = [
        Event.model_validate(
            {
                "source": "s",
                "object": "deal",
                "id": "d1",
                "op": "upsert",
                "version": v,
                "fields": {"status": "won", "amount": str(v), "closed_at": "2026-02-01T00:00:00Z"},
            }
        )
        for v in range(10, 0, -1)
    ]
    final = FinalStates(CATALOG)
    final.add_all(events)
    assert len(final) == 1
    engine = Engine(CATALOG, windows=WINDOWS)
    assert engine.load_final_states(final.states()) == 1
    won = [
        r.value
        for r in engine.report(T0 + 30 * DAY)
        if r.metric == "won_revenue" and r.window.label == "2026-02" and r.group == ()
    ]
    assert won == [10]


def test_a_replayed_state_is_set_aside_from_collections_and_still_freed() -> None:
    """After a replay its state is frozen out of the collector's walks (``gc.freeze``), and a
    dropped engine is freed all the same (reference counting: nothing in it is cyclic)."""
    import gc
    import weakref

    gc.unfreeze()
    engine = replay(CATALOG, history(11), T0 + 100 * DAY, windows=WINDOWS)
    assert gc.get_freeze_count() > len(engine.store)
    gone = weakref.ref(engine)
    del engine
    assert gone() is None
    gc.unfreeze()
