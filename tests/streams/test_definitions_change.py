"""The embedded runtime notices when the metric definitions change under an existing state:
it rebuilds the state from the event log (no crash, numbers equal to replay with the new
definitions), writes nothing while it does, then writes whole values, only those that changed."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_pulse.config import Deployment, load_config_text
from crm_pulse.connectors.protocols import Connector, FieldWrite
from crm_pulse.metrics import Engine
from crm_pulse.metrics.events import Event
from crm_pulse.metrics.fingerprint import STATE_FORMAT, changes, fingerprint
from crm_pulse.streams.embedded.commands import report
from crm_pulse.streams.embedded.log import read_events
from crm_pulse.streams.embedded.rebuild import META_KEY, rebuild_due
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime
from crm_pulse.streams.writeback import Planner

from .fakes import ListSource, ScriptedSink

NOW = datetime.now(UTC)
AT = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")

BASE = """
timezone: UTC
connectors:
  - file: {{name: crm, path: "{tmp}/unused.jsonl"}}
writeback:
  - {{metric: won_revenue, window: month, target: {{connector: crm, object: Company, record: c1, field: won}}}}
  - {{metric: deals_won, window: month, group: owner_id, target: {{connector: crm, object: User, field: deals}}}}
{extra}
runtime: {{state_path: "{tmp}/state.sqlite", debounce: 0s}}
"""
# B: a metric added (reading a deal field A's catalog does not read) and a measure's filter
# changed (deals_won counts new business only)
CHANGED = """
  - {metric: enterprise_won, window: month, target: {connector: crm, object: Company, record: c1, field: ent}}
metrics:
  measures:
    ent_won: {object: deal, where: {status: won, pipeline: enterprise}, at: closed_at}
    deals_won: {object: deal, where: {status: won, type: new}, at: closed_at}
  metrics:
    enterprise_won:
      value: ent_won
      category: business performance
"""


def _deal(i: int, version: int, status: str, owner: str, pipeline: str, kind: str) -> Event:
    return Event.model_validate(
        {
            "source": "crm",
            "object": "deal",
            "id": f"d{i}",
            "op": "upsert",
            "version": version,
            "fields": {
                "owner_id": owner,
                "status": status,
                "amount": "100",
                "pipeline": pipeline,
                "type": kind,
                "created_at": AT,
                "closed_at": AT,
            },
        }
    )


FIRST = [
    _deal(1, 1, "won", "u1", "enterprise", "new"),
    _deal(2, 1, "open", "u1", "enterprise", "new"),
    _deal(3, 1, "won", "u2", "smb", "renewal"),
    _deal(4, 1, "won", "u2", "enterprise", "upsell"),
]
LATER = [
    _deal(2, 2, "won", "u1", "enterprise", "new"),  # a record stored before the change
    _deal(3, 2, "won", "u2", "enterprise", "renewal"),
    _deal(5, 1, "won", "u2", "smb", "new"),
]


class _Plugin(Connector):
    kind = "plugin"


def _deployment(tmp: Path, changed: bool) -> Deployment:
    text = BASE.format(tmp=tmp, extra=CHANGED if changed else "")
    if changed:  # the rule goes with the others, the metrics section after them
        rule, _, metrics = CHANGED.partition("metrics:\n")
        text = BASE.format(tmp=tmp, extra=rule.rstrip()) + "metrics:\n" + metrics
    return load_config_text(text, base_dir=tmp)


def _runtime(deployment: Deployment, events: list[Event], sink: ScriptedSink) -> EmbeddedRuntime:
    crm = _Plugin("crm", {})
    crm.source = ListSource(events, page=2)
    crm.sink = sink
    return EmbeddedRuntime(deployment, connectors={"crm": crm})


def _expected(deployment: Deployment, events: list[Event], as_of: int) -> dict[str, object]:
    """What replay with ``deployment``'s definitions gives each written field."""
    catalog = deployment.catalog()
    engine = Engine(catalog, windows=deployment.window_specs())
    engine.advance(as_of)
    engine.apply_all(events)
    planner = Planner(deployment.writeback, catalog)
    return {f"{v.record}.{v.rule.target.field}": v.value for v in planner.values(engine, as_of)}


def _writes(sink: ScriptedSink) -> list[FieldWrite]:
    return [w for call in sink.calls for w in call]


async def test_a_changed_definition_rebuilds_the_state_and_writes_whole_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = _deployment(tmp_path, False), _deployment(tmp_path, True)
    sink = ScriptedSink()
    rt = _runtime(a, FIRST, sink)
    try:
        await rt.pollers["crm"].poll_once()
        await rt.consume_all()
        await rt.flush_writes(drain=True)
    finally:
        await rt.close()
    as_of = int(time.time() * 1000)
    assert {f"{w.record_id}.{w.field}": w.value for w in _writes(sink)} == _expected(
        a, FIRST, as_of
    )

    sink.calls.clear()
    caplog.set_level(logging.INFO)
    rt = _runtime(b, FIRST + LATER, sink)  # the source serves the later events on its next poll
    try:
        said = [r.getMessage() for r in caplog.records if "rebuilding" in r.getMessage()]
        assert said == [
            "metric definitions changed since the state was built (added: measure ent_won, "
            "metric enterprise_won; changed: fields read of deal (+pipeline), measure "
            "deals_won): rebuilding the state from the event log, 4 events"
        ]
        assert rt.consumer.rebuilt is not None and rt.consumer.rebuilt.applied == 4
        # after the rebuild, before anything new: whole values of B, only where they differ
        await rt.flush_writes(drain=True)
        rebuilt = {f"{w.record_id}.{w.field}": w.value for w in _writes(sink)}
        before_b = _expected(b, FIRST, as_of)
        # u1 still has 1 new-business win (unchanged: not written again); u2's two wins are a
        # renewal and an upsell: it has no data under B, and its field is corrected to 0
        assert rebuilt == {"c1.ent": 2, "u2.deals": 0}
        assert all(before_b.get(k, 0) == v for k, v in rebuilt.items())
        sink.calls.clear()
        await rt.pollers["crm"].poll_once()  # updates of records stored before the change
        await rt.consume_all()
        await rt.flush_writes(drain=True)
        now = int(time.time() * 1000)
        quarantined = rt.db.call(
            lambda: rt.db.conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]
        )
        assert quarantined == 0
        logged = [e for _, e in rt.db.call(lambda: read_events(rt.db.conn, 0, 1000))]
        final = _expected(b, logged, now)
        assert {
            k: sink.values[("Company" if k.startswith("c1") else "User", *k.split("."))]
            for k in final
        } == final
        # incremental after the rebuild == replay with B of the whole log
        engine = Engine(b.catalog(), windows=b.window_specs())
        engine.advance(now)
        engine.apply_all(logged)
        assert rt.report(now) == engine.report(now)
    finally:
        await rt.close()
    # restarted with B again: nothing to rebuild
    rt = _runtime(b, FIRST + LATER, ScriptedSink())
    try:
        assert rt.consumer.rebuilt is None
    finally:
        await rt.close()


async def test_no_field_is_written_before_the_rebuild_is_complete(tmp_path: Path) -> None:
    """The rebuild is one transaction: a crash in the middle leaves the old state and no
    planned write; the next start rebuilds again."""
    a, b = _deployment(tmp_path, False), _deployment(tmp_path, True)
    rt = _runtime(a, FIRST, ScriptedSink())
    await rt.pollers["crm"].poll_once()
    await rt.consume_all()
    await rt.flush_writes(drain=True)
    await rt.close()

    from crm_pulse.streams.embedded import rebuild

    real = rebuild._replay
    calls = 0

    def crash(*args: object) -> object:
        nonlocal calls
        calls += 1
        raise KeyboardInterrupt  # the process dies half-way

    rebuild._replay = crash  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            _runtime(b, FIRST, ScriptedSink())
    finally:
        rebuild._replay = real  # type: ignore[assignment]
    assert calls == 1
    conn = sqlite3.connect(tmp_path / "state.sqlite")
    try:
        assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
        stored = json.loads(
            conn.execute("SELECT value FROM meta WHERE name = ?", (META_KEY,)).fetchone()[0]
        )
        assert stored == fingerprint(a.catalog(), a.window_specs())
    finally:
        conn.close()
    sink = ScriptedSink()
    rt = _runtime(b, FIRST, sink)
    try:
        assert rt.consumer.rebuilt is not None
        await rt.flush_writes(drain=True)
        assert {(w.record_id, w.field, w.value) for w in _writes(sink)} == {
            ("c1", "ent", 2),
            ("u2", "deals", 0),
        }
    finally:
        await rt.close()


async def test_a_state_from_before_fingerprints_is_rebuilt_and_report_reads_it_right(
    tmp_path: Path,
) -> None:
    """An upgrade: the state has no fingerprint (or an older engine format). ``report``
    rebuilds in memory without writing; ``run`` rebuilds and records the definitions."""
    a, b = _deployment(tmp_path, False), _deployment(tmp_path, True)
    rt = _runtime(a, FIRST, ScriptedSink())
    await rt.pollers["crm"].poll_once()
    await rt.consume_all()
    await rt.close()
    conn = sqlite3.connect(tmp_path / "state.sqlite")
    conn.execute("DELETE FROM meta WHERE name = ?", (META_KEY,))
    conn.commit()
    conn.close()
    state = str(tmp_path / "state.sqlite")
    assert rebuild_due(state, b.catalog(), b.window_specs()) == (  # what doctor warns
        "metric definitions changed since it was built (the state does not say which "
        "definitions it was built with (an older crm-pulse)): the next start rebuilds it from "
        "the event log (4 events)"
    )
    as_of = int(time.time() * 1000)
    engine = Engine(b.catalog(), windows=b.window_specs())
    engine.advance(as_of)
    engine.apply_all(FIRST)
    assert report(b, as_of) == engine.report(as_of)
    conn = sqlite3.connect(tmp_path / "state.sqlite")
    try:  # report wrote nothing
        assert conn.execute("SELECT 1 FROM meta WHERE name = ?", (META_KEY,)).fetchone() is None
    finally:
        conn.close()
    from crm_pulse.errors import ConfigError
    from crm_pulse.streams.explain import explain_deployment

    with pytest.raises(ConfigError, match="the next start rebuilds it"):  # no wrong explanation
        explain_deployment(b, "deals_won", NOW.strftime("%Y-%m"), (), as_of)
    rt = _runtime(b, FIRST, ScriptedSink())
    try:
        assert rt.consumer.rebuilt is not None and rt.consumer.rebuilt.why.unknown
    finally:
        await rt.close()
    assert rebuild_due(state, b.catalog(), b.window_specs()) is None
    assert explain_deployment(b, "deals_won", NOW.strftime("%Y-%m"), (), as_of) is not None


def test_the_fingerprint_names_what_changed() -> None:
    base = load_config_text("connectors: [{file: {name: crm, path: x.jsonl}}]\n")
    fp = fingerprint(base.catalog(), base.window_specs())
    assert not changes(fp, fp)
    older = {**fp, "format": STATE_FORMAT - 1}
    assert str(changes(older, fp)) == (
        f"changed: engine state format ({STATE_FORMAT - 1} -> {STATE_FORMAT}: a crm-pulse upgrade)"
    )
    paris = load_config_text(
        "timezone: Europe/Paris\nconnectors: [{file: {name: crm, path: x.jsonl}}]\n"
    )
    assert str(changes(fp, fingerprint(paris.catalog(), paris.window_specs()))) == (
        "changed: time zone (UTC -> Europe/Paris)"
    )
    # descriptions and units change no stored entry
    described = load_config_text(
        "connectors: [{file: {name: crm, path: x.jsonl}}]\n"
        "metrics:\n  measures:\n    deals_won: {object: deal, where: {status: won}, "
        "at: closed_at, description: wins}\n"
    )
    assert not changes(fp, fingerprint(described.catalog(), described.window_specs()))
    # the fields an upgrade reads more of (modified_by / modified_at on deals)
    fewer = json.loads(json.dumps(fp))
    fewer["objects"]["deal"]["reads"].remove("modified_by")
    assert "fields read of deal (+modified_by)" in str(changes(fewer, fp))
    assert str(changes(None, fp)).startswith("the state does not say")
    # a measure that only moved is not named, but the change is still seen
    moved = json.loads(json.dumps(fp))
    moved["measures"]["deals_won"]["index"] += 100
    assert str(changes(moved, fp)) == "changed: the order of the measures kept"


async def test_an_update_the_engine_still_fails_on_is_quarantined_and_the_rest_goes_on(
    tmp_path: Path,
) -> None:
    """A stored record the definitions cannot explain (an entry edited by hand, or damaged):
    its update is quarantined with the engine's reason; the other events are applied."""
    from crm_pulse.streams.embedded.state import dumps_state, loads_state

    a = _deployment(tmp_path, False)
    rt = _runtime(a, FIRST, ScriptedSink())
    await rt.pollers["crm"].poll_once()
    await rt.consume_all()
    await rt.close()
    conn = sqlite3.connect(tmp_path / "state.sqlite")
    key = ("r", "crm", "deal", "d2")
    (raw,) = conn.execute("SELECT value FROM state WHERE k = ?", (repr(key),)).fetchone()
    value = loads_state(raw)
    value[1] = value[1][:-1]  # one field fewer than the catalog reads
    conn.execute("UPDATE state SET value = ? WHERE k = ?", (dumps_state(value), repr(key)))
    conn.commit()
    conn.close()
    rt = _runtime(a, FIRST, ScriptedSink())
    try:
        assert rt.consumer.rebuilt is None  # the definitions did not change
        await rt.ingest("crm", [LATER[0], LATER[2]])  # d2's update, then a new deal d5
        await rt.consume_all()
        rows = rt.db.call(
            lambda: rt.db.conn.execute("SELECT stage, reason FROM quarantine").fetchall()
        )
        assert len(rows) == 1 and rows[0][0] == "event"
        assert rows[0][1].startswith("the engine failed on it: ValueError: zip()")
        now = int(time.time() * 1000)
        deals = {
            r.group: r.value
            for r in rt.report(now)
            if r.metric == "deals_won" and r.window.spec.kind == "month"
        }
        assert deals[("owner_id", "u2")] == 3  # d5 counted after the poison
    finally:
        await rt.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(
        st.tuples(
            st.integers(0, 4),  # record
            st.integers(1, 4),  # version
            st.sampled_from(["won", "lost", "open", "delete"]),
            st.sampled_from(["u1", "u2"]),
            st.sampled_from(["enterprise", "smb"]),
            st.sampled_from(["new", "renewal"]),
        ),
        min_size=1,
        max_size=25,
    ),
    split=st.integers(0, 25),
)
def test_any_history_split_by_a_definition_change_ends_equal_to_replay(
    ops: list[tuple[int, int, str, str, str, str]], split: int
) -> None:
    """Events in any order, duplicates and deletes: the first part applied under A, the state
    rebuilt under B, the rest applied incrementally under B == replay with B of all of it."""
    import asyncio
    import tempfile

    events = []
    for i, version, status, owner, pipeline, kind in ops:
        if status == "delete":
            events.append(
                Event.model_validate(
                    {
                        "source": "crm",
                        "object": "deal",
                        "id": f"d{i}",
                        "op": "delete",
                        "version": version,
                    }
                )
            )
        else:
            events.append(_deal(i, version, status, owner, pipeline, kind))

    async def run(tmp: Path) -> None:
        a, b = _deployment(tmp, False), _deployment(tmp, True)
        rt = _runtime(a, [], ScriptedSink())
        try:
            await rt.ingest("crm", events[:split])
            await rt.consume_all()
        finally:
            await rt.close()
        rt = _runtime(b, [], ScriptedSink())
        try:
            await rt.ingest("crm", events[split:])
            await rt.consume_all()
            now = int(time.time() * 1000)
            engine = Engine(b.catalog(), windows=b.window_specs())
            engine.advance(now)
            engine.apply_all(events)
            assert rt.report(now) == engine.report(now)
        finally:
            await rt.close()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp)))
