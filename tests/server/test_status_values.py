"""What an operator reads: the status page (headless Chromium, with a screenshot) shows every
rule's values per group formatted by unit, windows, times with date and zone, "none" for empty
tables; ``/metrics`` (prometheus-client) has one gauge per written value and process metrics."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crm_pulse.config import load_config_text
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime
from crm_pulse.streams.http import serve_runtime

from .test_ingress_http import free_port
from .test_status_page import CHROMIUM_FLAGS


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _events() -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    closed, created = now - timedelta(seconds=90), now - timedelta(seconds=90 + 10 * 3600)
    out: list[dict[str, Any]] = []
    deals = [("u1", "won", "1000000"), ("u1", "won", "234567"), ("u1", "lost", "5")]
    deals += [("u2", "won", "0"), ("u2", "lost", "9")]
    for i, (owner, status, amount) in enumerate(deals):
        fields = {"owner_id": owner, "status": status, "amount": amount, "type": "new"}
        fields |= {"created_at": _iso(created), "closed_at": _iso(closed)}
        out.append(
            {"source": "crm", "object": "deal", "id": f"d{i}", "op": "upsert", "version": 1,
             "fields": fields}
        )  # fmt: skip
    ticket = {"status": "closed", "created_at": _iso(created), "closed_at": _iso(closed)}
    out.append(
        {"source": "crm", "object": "ticket", "id": "t1", "op": "upsert", "version": 1,
         "fields": ticket}
    )  # fmt: skip
    return out


DEPLOY = """
timezone: Europe/Berlin
connectors:
  - file: {{name: crm, input: "{input}", path: "{out}", poll_interval: 50ms}}
metrics: {{currency: USD}}
writeback:
  - {{metric: win_rate, window: quarter, group: owner_id, target: {{connector: crm, object: User, field: win_rate_qtd}}}}
  - {{metric: won_revenue, window: quarter, target: {{connector: crm, object: Company, record: c1, field: won_qtd}}}}
  - {{metric: avg_resolution_time_hours, window: month, target: {{connector: crm, object: Company, record: c1, field: hours_mtd}}}}
runtime: {{state_path: "{state}", listen: "127.0.0.1:{port}", debounce: 0s}}
"""


async def _chromium(chromium: str, tmp_path: Path, *args: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        chromium,
        *CHROMIUM_FLAGS[:-1],  # without --dump-dom
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    return out


async def test_status_page_and_metrics_show_every_rule_formatted(tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (scripts/ensure-chromium.sh installs it)"
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(e) + "\n" for e in _events()))
    port = free_port()
    text = DEPLOY.format(
        input=tmp_path / "in.jsonl", out=tmp_path / "out.jsonl", state=tmp_path / "s.sqlite",
        port=port,
    )  # fmt: skip
    runtime = EmbeddedRuntime(load_config_text(text, base_dir=tmp_path))
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop, serve=serve_runtime))
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            await asyncio.sleep(0.05)
            if runtime.planner.ready and runtime.consumed_events >= 6:
                break
        metrics = await asyncio.to_thread(
            lambda: urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
        )
        dom = (await _chromium(chromium, tmp_path, "--dump-dom", base + "/")).decode()
        shot = tmp_path / "status.png"
        await _chromium(
            chromium, tmp_path, f"--screenshot={shot}", "--window-size=1280,1800", base + "/"
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    # /metrics: one gauge per written value, counters named *_total, process metrics
    assert (
        'crm_pulse_metric_value{group="owner_id=u1",metric="win_rate",window="quarter"} 0.666667'
        in metrics
    )
    assert (
        'crm_pulse_metric_value{group="owner_id=u2",metric="win_rate",window="quarter"} 0.5'
        in metrics
    )
    assert (
        'crm_pulse_metric_value{group="",metric="won_revenue",window="quarter"} 1.234567e+06'
        in metrics
    )
    assert (
        'crm_pulse_metric_value{group="",metric="avg_resolution_time_hours",window="month"} 10.0'
        in metrics
    )
    assert 'crm_pulse_events_changed_total{connector="crm"} 6.0' in metrics
    assert "process_cpu_seconds_total" in metrics and "process_resident_memory_bytes" in metrics
    assert "crm_pulse_first_reads_pending 0.0" in metrics
    assert "events_per_second" not in metrics
    for line in metrics.splitlines():
        if line.startswith("# TYPE crm_pulse_") and line.endswith(" counter"):
            name = line.split()[2]
            assert name.endswith("_total"), name
    # the page, as Chromium ran it
    assert 'data-ready="yes"' in dom, dom[:2000]
    cells = {
        (m, g): v
        for m, g, v in re.findall(
            r'data-metric="([^"]+)" data-group="([^"]*)" data-value="[^"]*">([^<]*)<', dom
        )
    }
    assert cells[("win_rate", "owner_id=u1")] == "66.7 %"
    assert cells[("win_rate", "owner_id=u2")] == "50.0 %"
    assert cells[("won_revenue", "")] == "$1,234,567"
    assert cells[("avg_resolution_time_hours", "")] == "10.0 h"
    quarter = f"{datetime.now(UTC).year}-Q{(datetime.now(UTC).month - 1) // 3 + 1}"
    assert f"win_rate · quarter {quarter} → crm User.win_rate_qtd" in dom
    assert re.search(r"updated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d (CET|CEST|GMT\+[12])", dom), dom[:600]
    for table in ("quarantine", "dead"):
        body = dom[dom.index(f'<table id="{table}"') :]
        body = body[: body.index("</table>")]
        assert '<td class="none"' in body and ">none<" in body, body
    assert shot.exists() and shot.stat().st_size > 20_000  # a rendered page, not a blank one
    shutil.copy(shot, Path("/tmp") / "crm-pulse-status-test.png")


async def test_status_page_lists_quarantine_entries_and_dead_letters(tmp_path: Path) -> None:
    """Issue 13 meets issue 14: what /status reports in ``quarantine`` (newest entries, no
    excerpts) and ``recent_dead_letters`` is on the page, row by row; /metrics counts both."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (scripts/ensure-chromium.sh installs it)"
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(e) + "\n" for e in _events()))
    port = free_port()
    text = DEPLOY.format(
        input=tmp_path / "in.jsonl", out=tmp_path / "out.jsonl", state=tmp_path / "s.sqlite",
        port=port,
    )  # fmt: skip
    runtime = EmbeddedRuntime(load_config_text(text, base_dir=tmp_path))

    def damage(conn: Any) -> None:  # a log entry from an older version, a write that died
        conn.execute(
            "INSERT INTO events (connector, received_ms, body) VALUES ('crm', 0, ?)",
            ('{"source": "crm", "object": "deal"}',),
        )
        conn.execute(
            "INSERT INTO dead_letters (connector, object, record_id, field, value, reason, "
            "attempts, failed_ms) VALUES ('crm', 'Company', 'c9', 'lost_qtd', '12', "
            "'field lost_qtd does not exist; run crm-pulse provision', 5, 1764320000000)"
        )

    runtime.db.call(runtime.db.transaction(damage))
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop, serve=serve_runtime))
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            await asyncio.sleep(0.05)
            if runtime.planner.ready and runtime.consumed_events >= 6:
                break
        status = json.loads(
            await asyncio.to_thread(
                lambda: urllib.request.urlopen(base + "/status", timeout=10).read().decode()
            )
        )
        metrics = await asyncio.to_thread(
            lambda: urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
        )
        dom = (await _chromium(chromium, tmp_path, "--dump-dom", base + "/")).decode()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    (entry,) = status["quarantine"]
    assert status["quarantined"] == 1
    assert (entry["connector"], entry["stage"], entry["position"]) == ("crm", "event", "1")
    assert "not a valid canonical event" in entry["reason"] and "excerpt" not in entry
    mine = [
        line for line in metrics.splitlines() if line.startswith(("crm_pulse_q", "crm_pulse_d"))
    ]
    assert "crm_pulse_quarantined 1.0" in mine and "crm_pulse_dead_letters 1.0" in mine, mine
    assert 'data-ready="yes"' in dom, dom[:2000]
    tables = {}
    for table in ("quarantine", "dead"):
        body = dom[dom.index(f'<table id="{table}"') :]
        tables[table] = body[: body.index("</table>")]
        assert ">none<" not in tables[table], tables[table]
    assert "not a valid canonical event" in tables["quarantine"]
    assert ">event<" in tables["quarantine"] and ">crm<" in tables["quarantine"]
    assert "run crm-pulse provision" in tables["dead"] and ">lost_qtd<" in tables["dead"]
    assert "dead letters: 1 · quarantined: 1" in dom
