"""State checkpoints (crm_pulse/streams/embedded/checkpoints.py; issue 17, item 8).

Batches commit their consumed position and planned writes; the engine state is written at
checkpoints. A start (after a crash: no checkpoint at stop) loads the last checkpoint and
re-applies the log after it, planning nothing; readers of a file that is behind its log
(``report``, ``explain``) build the same state in memory. The kill -9 test of
tests/streams/test_crash.py runs with checkpoints now and then as well as with the defaults.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from crm_pulse.cli import main
from crm_pulse.config import Deployment, load_config_text
from crm_pulse.metrics import Engine
from crm_pulse.metrics.events import Event, parse_time
from crm_pulse.streams.embedded import checkpoints as checkpoints_module
from crm_pulse.streams.embedded.checkpoints import Policy
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime
from crm_pulse.streams.embedded.state import SQLiteStore

from .conftest import Clock

DEPLOY = """
timezone: UTC
connectors:
  - file: {{name: out, path: "{out}", max_batch: 100}}
writeback:
  - {{metric: won_revenue, window: month, group: {{}}, target: {{connector: out, object: Company, record: "c1", field: won_revenue_mtd}}}}
  - {{metric: win_rate, window: quarter, group: owner_id, target: {{connector: out, object: User, field: win_rate_qtd}}}}
  - {{metric: median_deal_size, window: year, group: {{}}, target: {{connector: out, object: Company, record: "c1", field: median_ytd}}}}
  - {{metric: deals_won, window: rolling:30d, group: {{}}, target: {{connector: out, object: Company, record: "c1", field: deals_won_30d}}}}
runtime:
  state_path: "{state}"
  debounce: 0s
  batch_size: 7
  checkpoint: {{events: {events}, interval: {interval}}}
"""

NOW = parse_time("2026-11-20T12:00:00Z")


def deployment(tmp_path: Path, *, events: int = 1_000_000, interval: str = "1h") -> Deployment:
    text = DEPLOY.format(
        out=tmp_path / "writes.jsonl",
        state=tmp_path / "state.sqlite",
        events=events,
        interval=interval,
    )
    return load_config_text(text, base_dir=tmp_path)


def history(seed: int, n: int) -> list[Event]:
    """Deals with updates, stale versions, duplicates and deletes."""
    rng = random.Random(seed)
    out: list[Event] = []
    versions: dict[int, int] = {}
    for _ in range(n):
        i = rng.randrange(25)
        if rng.random() < 0.1 and i in versions:
            op, fields = "delete", {}
            versions[i] += 1
        else:
            versions[i] = versions.get(i, 0) + rng.choice([1, 1, 1, 0, -1])
            status = rng.choice(["won", "won", "lost", "open"])
            day = rng.randrange(1, 20)
            fields = {
                "owner_id": f"u{rng.randrange(4)}",
                "status": status,
                "amount": str(rng.randrange(10, 900)),
                "created_at": "2026-09-01T00:00:00Z",
                "closed_at": f"2026-11-{day:02d}T10:00:00Z" if status != "open" else None,
                "type": "new",
            }
            op = "upsert"
        out.append(
            Event.model_validate(
                {
                    "source": "crm",
                    "object": "deal",
                    "id": str(i),
                    "op": op,
                    "version": max(versions[i], 1),
                    "fields": fields,
                }
            )
        )
    return out


def rows(rt: EmbeddedRuntime) -> list[Any]:
    return [(v.metric, v.window, v.group, v.value) for v in rt.report(NOW)]


def table(path: Path, query: str) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def meta(path: Path, name: str) -> int:
    ((value,),) = table(path, f"SELECT value FROM meta WHERE name = '{name}'")
    return int(value)


async def crash(rt: EmbeddedRuntime) -> None:
    """Stop without the stop's checkpoint (what kill -9 leaves: every batch committed)."""
    await asyncio.to_thread(rt.db.close)


def recompute(dep: Deployment, events: list[Event]) -> list[Any]:
    engine = Engine(dep.catalog(), windows=dep.window_specs())
    engine.advance(NOW)
    engine.apply_all(events)
    return [(v.metric, v.window, v.group, v.value) for v in engine.report(NOW)]


@pytest.mark.parametrize(
    ("seed", "policy"),
    [
        (1, Policy(events=1, share=4)),
        (2, Policy(events=40, interval=3600.0, share=4)),
        (3, Policy(events=10**9, share=4)),
        (4, Policy()),
    ],
)
def test_policy_is_honoured(seed: int, policy: Policy) -> None:
    """The rule itself: a backlog waits for ``events`` and a quarter of all applied; a caught
    up consumer waits for ``interval``; nothing moved, nothing to write."""
    rng = random.Random(seed)
    for _ in range(500):
        since, total = rng.randrange(0, 200), rng.randrange(0, 2000)
        backlog, idle, dirty = rng.choice([0, 5]), rng.uniform(0, 7200), rng.randrange(0, 3)
        quiet = rng.random() < 0.5
        due = policy.due(
            since=since,
            applied_total=total,
            backlog=backlog,
            idle=quiet,
            idle_for=idle,
            dirty=dirty,
        )
        if since <= 0 and not dirty:
            assert not due
        elif since >= max(policy.events, total // policy.share if policy.share else 0):
            assert due
        else:
            assert due == (quiet and backlog == 0 and idle >= policy.interval)
    assert Policy().due(since=1, applied_total=10**6, backlog=9, idle=False, idle_for=0, dirty=0)
    big = Policy(events=100, share=4)
    assert not big.due(since=150, applied_total=1000, backlog=9, idle=True, idle_for=1e9, dirty=5)
    assert big.due(since=250, applied_total=1000, backlog=9, idle=False, idle_for=0, dirty=5)


async def test_batches_between_checkpoints_write_no_state_and_a_start_re_applies_the_log(
    tmp_path: Path,
) -> None:
    dep = deployment(tmp_path)
    state = tmp_path / "state.sqlite"
    events = history(7, 120)
    clock = Clock(NOW / 1000)
    rt = EmbeddedRuntime(dep, clock=clock)
    for i in range(0, len(events), 30):
        await rt.ingest("crm", events[i : i + 30])
        await rt.consume_all()
    await rt.tick()
    want = rows(rt)
    assert want == recompute(dep, events)
    # 18 batches committed their positions and writes, and no state entry
    assert meta(state, "consumed") == 120 and meta(state, "state_at") == 0
    assert table(state, "SELECT COUNT(*) FROM state") == [(0,)]
    outbox = table(state, "SELECT * FROM outbox ORDER BY 1, 2, 3, 4")
    assert outbox  # the values were planned
    await crash(rt)

    read: list[tuple[int, int]] = []
    real = checkpoints_module.catch_up

    def counted(*args: Any) -> Any:
        read.append((args[2], args[3]))  # after, upto
        return real(*args)

    checkpoints_module_catch_up = "crm_pulse.streams.embedded.consumer.catch_up"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checkpoints_module_catch_up, counted)
        again = EmbeddedRuntime(dep, clock=clock)
        assert read == [(0, 120)]  # the whole log after the (empty) checkpoint, once
        assert rows(again) == want
        # it planned nothing: those batches' writes are in the outbox as they were
        assert table(state, "SELECT * FROM outbox ORDER BY 1, 2, 3, 4") == outbox
        await again.consume_all()
        await again.tick()
        assert table(state, "SELECT * FROM outbox ORDER BY 1, 2, 3, 4") == outbox
        assert again.status()["checkpoint_position"] == 0
        await again.close()  # a clean stop checkpoints
        (done,) = again.consumer.checkpoints_done
        assert (done.after, done.position) == (0, 120) and done.entries > 0
        assert meta(state, "state_at") == 120
        assert table(state, "SELECT COUNT(*) FROM state")[0][0] > 0
        third = EmbeddedRuntime(dep, clock=clock)
        assert read == [(0, 120)]  # nothing left to re-apply
        assert rows(third) == want
        await third.close()


async def test_a_checkpoint_writes_each_changed_entry_once_whatever_the_batches(
    tmp_path: Path,
) -> None:
    """Per batch, the company's buckets were written again by every batch; a checkpoint after
    many batches writes each changed entry once."""
    events = history(11, 140)
    written: dict[str, list[int]] = {}
    real = SQLiteStore.flush
    for name, every in (("each batch", 1), ("checkpoint", 10**9)):
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        dep = deployment(folder, events=every)
        counts = written.setdefault(name, [])

        def counted(self: SQLiteStore, conn: sqlite3.Connection, counts: list[int] = counts) -> int:
            n = real(self, conn)
            counts.append(n)
            return n

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(SQLiteStore, "flush", counted)
            rt = EmbeddedRuntime(dep, clock=Clock(NOW / 1000))
            if every == 1:
                rt.consumer.checkpoints = Policy()  # every batch, as before checkpoints
            await rt.ingest("crm", events)
            await rt.consume_all()
            entries = len(rt.consumer.store)
            await rt.close()
        assert table(folder / "state.sqlite", "SELECT COUNT(*) FROM state") == [(entries,)]
    assert len(written["each batch"]) >= 20  # a flush per batch of 7
    # one flush, at the stop: each entry the batches changed (or created and deleted) once
    assert len(written["checkpoint"]) == 1
    assert written["checkpoint"][0] * 3 < sum(written["each batch"]), written


async def test_readers_of_a_file_behind_its_log_see_the_whole_log(tmp_path: Path) -> None:
    """``report`` and ``explain --config`` on a file whose log moved past its last checkpoint
    (a running runtime, or one that was killed) build the state of the whole log in memory."""
    dep = deployment(tmp_path, events=50)
    state = tmp_path / "state.sqlite"
    # (events: 50 and a quarter of all applied: checkpoints at 50 and 100 of these 130)
    config = tmp_path / "deploy.yaml"
    config.write_text(
        DEPLOY.format(out=tmp_path / "writes.jsonl", state=state, events=50, interval="1h")
    )
    events = history(5, 130)
    rt = EmbeddedRuntime(dep, clock=Clock(NOW / 1000))
    await rt.ingest("crm", events)
    await rt.consume_all()
    assert 0 < meta(state, "state_at") < meta(state, "consumed") == 130
    shown = rt.status()["checkpoints"]
    assert [(c["after"], c["position"]) for c in shown] == [(0, 56), (56, 112)], shown
    await crash(rt)
    as_of = ["--as-of", "2026-11-20T12:00:00Z"]
    behind = io.StringIO()
    assert main(["report", "--config", str(config), *as_of, "--format", "jsonl"], out=behind) == 0
    question = ["--metric", "won_revenue", "--window", "2026-11", "--format", "jsonl"]
    explained = io.StringIO()
    assert main(["explain", "--config", str(config), *question, *as_of], out=explained) == 0
    assert meta(state, "state_at") < 130  # the readers wrote nothing
    # the same questions once a start caught the file up and stopped
    again = EmbeddedRuntime(dep, clock=Clock(NOW / 1000))
    await again.close()
    assert meta(state, "state_at") == 130
    current, current_explained = io.StringIO(), io.StringIO()
    assert main(["report", "--config", str(config), *as_of, "--format", "jsonl"], out=current) == 0
    assert main(["explain", "--config", str(config), *question, *as_of], out=current_explained) == 0
    assert behind.getvalue() == current.getvalue() and current.getvalue()
    assert explained.getvalue() == current_explained.getvalue()
    total = sum(json.loads(line)["contribution"] for line in explained.getvalue().splitlines()[:-1])
    assert total == json.loads(explained.getvalue().splitlines()[-1])["value"] > 0


async def test_an_event_the_engine_fails_on_while_re_applying_is_quarantined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dep = deployment(tmp_path)
    events = history(3, 60)
    rt = EmbeddedRuntime(dep, clock=Clock(NOW / 1000))
    await rt.ingest("crm", events)
    await rt.consume_all()
    await crash(rt)
    real = Engine.apply_counted
    doomed = events[17]

    def failing(self: Engine, event: Event) -> Any:
        if event == doomed:
            raise RuntimeError("boom")
        return real(self, event)

    monkeypatch.setattr(Engine, "apply_counted", failing)
    again = EmbeddedRuntime(dep, clock=Clock(NOW / 1000))
    quarantined = table(tmp_path / "state.sqlite", "SELECT stage, position, reason FROM quarantine")
    assert quarantined == [("event", "18", "the engine failed on it: RuntimeError: boom")]
    assert rows(again) == recompute(dep, events[:17] + events[18:])
    await again.close()


async def test_a_file_of_schema_1_holds_its_consumed_position_s_state(tmp_path: Path) -> None:
    """Before checkpoints the state was written with every batch: such a file is taken as the
    state of its consumed position (nothing re-applied) and moved to schema 2."""
    dep = deployment(tmp_path)
    state = tmp_path / "state.sqlite"
    events = history(9, 50)
    rt = EmbeddedRuntime(dep, clock=Clock(NOW / 1000))
    await rt.ingest("crm", events)
    await rt.consume_all()
    await rt.close()
    want = recompute(dep, events)
    conn = sqlite3.connect(state)
    with conn:
        conn.execute("UPDATE meta SET value = '1' WHERE name = 'schema_version'")
        conn.execute("DELETE FROM meta WHERE name = 'state_at'")
    conn.close()
    seen: list[Any] = []
    with pytest.MonkeyPatch.context() as mp:
        real = checkpoints_module.catch_up
        mp.setattr(
            "crm_pulse.streams.embedded.consumer.catch_up",
            lambda *a: seen.append(a) or real(*a),
        )
        again = EmbeddedRuntime(dep, clock=Clock(NOW / 1000))
    assert seen == []
    assert rows(again) == want
    assert meta(state, "schema_version") == 2 and meta(state, "state_at") == 50
    await again.close()
