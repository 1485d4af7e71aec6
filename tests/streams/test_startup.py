"""Starting on a large state (issue 17, items 5 and 8): HTTP answers from the start, a damaged
state still fails at start naming file and key, and the start does not compute a report.

The load is slowed artificially (every stored entry takes a few milliseconds to read), so the
test sees the runtime while it loads: ``/status`` answers at once and says what it does and
how far; once loaded, the runtime goes on as before.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from crm_pulse.config import load_config_text
from crm_pulse.metrics.engine import Engine
from crm_pulse.streams.embedded import state as state_module
from crm_pulse.streams.embedded.commands import report
from crm_pulse.streams.embedded.database import StateError
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime
from crm_pulse.streams.embedded.state import dumps_state
from crm_pulse.streams.http import serve_runtime
from tests.server.test_ingress_http import free_port

DEPLOY = """
timezone: UTC
connectors:
  - file: {{name: crm, input: "{input}", path: "{out}", poll_interval: 50ms}}
writeback:
  - {{metric: deals_won, window: month, group: owner_id, target: {{connector: crm, object: User, field: won_mtd}}}}
runtime: {{state_path: "{state}", listen: "127.0.0.1:{port}", debounce: 0s, tick: 1s}}
"""


def _deal(i: int) -> dict[str, Any]:
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    fields = {"owner_id": f"u{i % 7}", "status": "won", "amount": "10", "closed_at": at}
    return {"source": "crm", "object": "deal", "id": f"d{i}", "op": "upsert", "version": 1,
            "fields": fields | {"created_at": at}}  # fmt: skip


def _deployment(tmp_path: Path, port: int = 0) -> Any:
    text = DEPLOY.format(
        input=tmp_path / "in.jsonl",
        out=tmp_path / "out.jsonl",
        state=tmp_path / "s.sqlite",
        port=port or free_port(),
    )
    return load_config_text(text, base_dir=tmp_path)


async def _filled(tmp_path: Path, deals: int) -> Any:
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(_deal(i)) + "\n" for i in range(deals)))
    dep = _deployment(tmp_path)
    rt = EmbeddedRuntime(dep)
    await rt.pollers["crm"].poll_once()
    await rt.consume_all()
    await rt.close()
    return dep


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except OSError:
        return 0, ""


async def test_status_answers_at_once_while_a_slow_state_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dep = await _filled(tmp_path, 60)
    entries = sqlite3.connect(tmp_path / "s.sqlite").execute("SELECT count(*) FROM state")
    total = int(entries.fetchone()[0])
    assert total > 60
    slow = state_module.loads_state

    def loads(data: bytes) -> Any:
        time.sleep(0.02)  # a state far larger than this one
        return slow(data)

    monkeypatch.setattr(state_module, "loads_state", loads)
    monkeypatch.setattr(state_module, "PROGRESS_EVERY", 10)
    port = free_port()
    dep = _deployment(tmp_path, port)
    began = time.monotonic()
    rt = EmbeddedRuntime(dep, defer_start=True)  # as `crm-pulse run` does
    stop = asyncio.Event()
    task = asyncio.create_task(rt.run(stop, serve=serve_runtime))
    base = f"http://127.0.0.1:{port}"
    try:
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + 120
        while True:
            code, body = await asyncio.to_thread(_get, f"{base}/status")
            if code:
                break
            assert time.monotonic() < deadline and not task.done(), "never answered /status"
            await asyncio.sleep(0.02)
        # HTTP answers while the state is still loading (a clock-free check: the first answer
        # says it is starting; the load is slowed to > total * 20 ms, asserted below)
        assert code == 200 and json.loads(body)["starting"] is not None, body
        while True:
            status = json.loads(body)
            seen.append(status)
            health = await asyncio.to_thread(_get, f"{base}/healthz")
            assert health[0] == 200
            if status["starting"] is None:
                break
            assert time.monotonic() < deadline, f"still starting: {status['starting']}"
            code, text = await asyncio.to_thread(_get, f"{base}/overview")
            overview = json.loads(text)
            assert code == 200
            if overview["status"]["starting"] is not None:  # no value before it is loaded
                assert overview["rules"] == [] and overview["metrics"] == []
            code, text = await asyncio.to_thread(_get, f"{base}/metrics")
            assert code == 200
            await asyncio.sleep(0.1)
            code, body = await asyncio.to_thread(_get, f"{base}/status")
            assert code == 200
        phases = [s["starting"] for s in seen if s["starting"]]
        assert phases[0]["phase"] in ("checking the state file", "loading state")
        loading = [p for p in phases if p["phase"] == "loading state"]
        progress = [p["done"] for p in loading if "done" in p]
        assert progress and progress[-1] > 0 and {p["total"] for p in loading} == {total}
        assert time.monotonic() - began > total * 0.02  # it did load slowly, behind HTTP
        values = {v["group"]: v["value"] for v in await rt.metric_values()}
        assert values == {f"owner_id=u{k}": (9 if k < 4 else 8) for k in range(7)}
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def test_a_damaged_state_fails_at_start_naming_file_and_key(tmp_path: Path) -> None:
    dep = await _filled(tmp_path, 5)
    key = ("b", 0, (), ("month", 700))  # a bucket whose value is not [value, count]
    with sqlite3.connect(tmp_path / "s.sqlite") as conn:
        conn.execute(
            "INSERT INTO state VALUES (?, ?, ?)", (repr(key), dumps_state(key), dumps_state("x"))
        )
    with pytest.raises(StateError) as info:
        EmbeddedRuntime(dep)
    message = str(info.value)
    assert "s.sqlite" in message and "('b', 0, (), ('month', 700))" in message
    assert "expected [value, count]" in message
    with pytest.raises(StateError, match=r"s\.sqlite.*\('b', 0"):
        report(dep, int(time.time() * 1000))
    rt = EmbeddedRuntime(dep, defer_start=True)  # `crm-pulse run`: fails in run, HTTP stopped
    with pytest.raises(StateError, match=r"s\.sqlite.*expected \[value, count\]"):
        await rt.run(asyncio.Event(), serve=serve_runtime)


async def test_a_start_computes_no_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dep = await _filled(tmp_path, 20)

    def no_report(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a start computed a report")

    monkeypatch.setattr(Engine, "report", no_report)
    monkeypatch.setattr(Engine, "iter_report", no_report)
    rt = EmbeddedRuntime(dep, defer_start=True)
    stop = asyncio.Event()
    task = asyncio.create_task(rt.run(stop))
    try:
        for _ in range(1000):
            if rt.starting is None and rt.tick_seconds:
                break
            await asyncio.sleep(0.02)
        assert rt.starting is None
        assert rt.tick_seconds  # the first tick ran
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_a_filtered_report_reads_the_rolling_windows_exact_times(tmp_path: Path) -> None:
    """``report --metric`` loads only the metric's entries: the hour dicts of exact times that
    rolling windows read among them (they were left out: its rolling rows were short)."""
    from crm_pulse.metrics.report import Selection
    from crm_pulse.streams.embedded.commands import report_rows

    dep = await _filled(tmp_path, 30)
    text = DEPLOY.replace("window: month", 'window: "rolling:30d"')
    rolling = load_config_text(
        text.format(
            input=tmp_path / "in.jsonl",
            out=tmp_path / "out.jsonl",
            state=tmp_path / "s.sqlite",
            port=free_port(),
        ),
        base_dir=tmp_path,
    )
    rt = EmbeddedRuntime(rolling)  # the same definitions, one more window kept
    await rt.consume_all()
    await rt.close()
    now = int(time.time() * 1000)
    full = {
        (r.metric, r.window.label, r.group): r.value
        for r in report(rolling, now)
        if r.metric == "deals_won" and r.window.spec.kind == "rolling"
    }
    assert full[("deals_won", "last_30d", ())] == 30
    some = report_rows(rolling, now, Selection(metrics=frozenset({"deals_won"})))
    assert {
        (r.metric, r.window.label, r.group): r.value
        for r in some
        if r.window.spec.kind == "rolling"
    } == full
    assert dep is not None


async def test_a_deferred_start_still_checks_the_whole_file_before_running(
    tmp_path: Path,
) -> None:
    """``crm-pulse run`` answers HTTP before it reads the whole file; the checks that do (the
    log's types, SQLite's integrity check) still refuse the file before anything runs."""
    dep = await _filled(tmp_path, 3)
    with sqlite3.connect(tmp_path / "s.sqlite") as conn:
        conn.execute("INSERT INTO events (connector, received_ms, body) VALUES ('crm', 0, x'00')")
    rt = EmbeddedRuntime(dep, defer_start=True)
    assert rt.starting is not None and rt.starting["phase"] == "checking the state file"
    with pytest.raises(StateError, match=r"s\.sqlite: events, position \d+: the event is not"):
        await rt.run(asyncio.Event(), serve=serve_runtime)


async def test_status_says_when_a_start_re_applies_the_log_after_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a kill -9 (no checkpoint at stop) a start re-applies the log after the last
    checkpoint; ``/status`` says so, with the positions to re-apply, and the values are the
    same as before the kill."""
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(_deal(i)) + "\n" for i in range(40)))
    rt = EmbeddedRuntime(_deployment(tmp_path))
    await rt.pollers["crm"].poll_once()
    await rt.consume_all()
    want = {v.group: v.value for v in rt.report() if v.metric == "deals_won"}
    await asyncio.to_thread(rt.db.close)  # killed: the state was never checkpointed
    state = sqlite3.connect(tmp_path / "s.sqlite")
    positions = state.execute(
        "SELECT name, value FROM meta WHERE name IN ('consumed', 'state_at')"
    ).fetchall()
    state.close()
    assert dict(positions) == {"consumed": "40", "state_at": "0"}
    slow = Engine.apply_counted

    def apply(self: Engine, event: Any) -> Any:
        time.sleep(0.05)  # a long log tail
        return slow(self, event)

    monkeypatch.setattr(Engine, "apply_counted", apply)
    port = free_port()
    rt = EmbeddedRuntime(_deployment(tmp_path, port), defer_start=True)
    stop = asyncio.Event()
    task = asyncio.create_task(rt.run(stop, serve=serve_runtime))
    try:
        phases: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            code, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/status")
            if code == 200:
                starting = json.loads(body)["starting"]
                if starting is None:
                    break
                phases.append(starting)
            await asyncio.sleep(0.05)
        reapply = [p for p in phases if p["phase"].startswith("re-applying the log")]
        assert reapply and reapply[0]["total"] == 40, phases
        got = {v.group: v.value for v in rt.report() if v.metric == "deals_won"}
        assert got == want
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
