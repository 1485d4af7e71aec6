"""``crm-pulse events export`` (export | replay == report) and ``crm-pulse audit`` (drift)."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

from crm_pulse.cli import main
from crm_pulse.config import load_config_text
from crm_pulse.sandbox import FakeHubSpot, FakeServer, TestCA
from crm_pulse.streams.audit import audit
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime

from ..server.test_ingress_http import deal, free_port


def _deployment_file(tmp_path: Path, events: list[dict[str, object]]) -> Path:
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    config = tmp_path / "deploy.yaml"
    config.write_text(
        "connectors:\n"
        f"  - file: {{name: out, input: '{tmp_path / 'in.jsonl'}', path: '{tmp_path / 'out.jsonl'}'}}\n"
        "metrics:\n  quotas:\n"
        "    - {owner_id: u1, period: quarter, period_start: 2026-10-01, amount: 1000}\n"
        "writeback:\n"
        "  - {metric: won_revenue, window: month, target: {connector: out, object: Company, record: c1, field: won_mtd}}\n"
        "  - {metric: deals_won, window: month, group: owner_id, target: {connector: out, object: User, field: won}}\n"
        f"runtime: {{state_path: '{tmp_path / 's.sqlite'}', debounce: 0s, "
        f"listen: '127.0.0.1:{free_port()}'}}\n"
    )
    return config


def test_export_then_replay_gives_the_report(tmp_path: Path) -> None:
    events = [deal(i, amount=str(100 + i)) for i in range(30)]
    for i, e in enumerate(events):
        e["fields"]["owner_id"] = f"u{i % 3}"  # type: ignore[index]
    gone = {k: v for k, v in events[3].items() if k != "fields"}
    events += [{**gone, "op": "delete", "version": 9}, events[5]]
    config = _deployment_file(tmp_path, events)
    assert main(["backfill", "--config", str(config), "--no-progress"], out=io.StringIO()) == 0
    exported = tmp_path / "export.jsonl"
    err = io.StringIO()
    assert main(["events", "export", "--config", str(config), "-o", str(exported)], err=err) == 0
    lines = exported.read_text().splitlines()
    assert len(lines) >= 32 and "event(s)" in err.getvalue()
    as_of = ["--as-of", "2026-12-15", "--format", "jsonl"]
    report, replay = io.StringIO(), io.StringIO()
    assert main(["report", "--config", str(config), *as_of], out=report) == 0
    assert main(["replay", str(exported), "--config", str(config), *as_of], out=replay) == 0
    assert report.getvalue() == replay.getvalue()
    assert "won_revenue" in report.getvalue()
    stdout = io.StringIO()  # to stdout too, for a pipe into replay
    assert main(["events", "export", "--config", str(config)], out=stdout, err=io.StringIO()) == 0
    assert stdout.getvalue() == exported.read_text()


def test_export_leaves_out_log_entries_that_are_not_events(tmp_path: Path) -> None:
    """Issue 13 quarantines a log entry that is not a valid event (it counts in no metric);
    the export leaves it out too, says so, and replay still equals report."""
    config = _deployment_file(tmp_path, [deal(i, amount="100") for i in range(5)])
    assert main(["backfill", "--config", str(config), "--no-progress"], out=io.StringIO()) == 0
    with sqlite3.connect(tmp_path / "s.sqlite") as conn:
        conn.execute(
            "INSERT INTO events (connector, received_ms, body) VALUES ('out', 0, ?)",
            ('{"source": "out", "object": "deal", "id": "9", "op": "upsert"}',),
        )
    exported, err = tmp_path / "export.jsonl", io.StringIO()
    assert main(["events", "export", "--config", str(config), "-o", str(exported)], err=err) == 0
    assert all(json.loads(line)["id"] != "9" for line in exported.read_text().splitlines())
    assert "1 log entry left out: not valid events" in err.getvalue()
    as_of = ["--as-of", "2026-12-15", "--format", "jsonl"]
    report, replay = io.StringIO(), io.StringIO()
    assert main(["report", "--config", str(config), *as_of], out=report) == 0
    assert main(["replay", str(exported), "--config", str(config), *as_of], out=replay) == 0
    assert report.getvalue() == replay.getvalue()


def test_audit_of_a_file_crm_lists_a_changed_field(tmp_path: Path) -> None:
    events = [deal(i, amount="100") for i in range(5)]
    config = _deployment_file(tmp_path, events)
    assert main(["backfill", "--config", str(config), "--no-progress"], out=io.StringIO()) == 0
    assert main(["run", "--config", str(config), "--for", "1"], out=io.StringIO()) == 0
    out = io.StringIO()
    assert main(["audit", "--config", str(config)], out=out) == 0, out.getvalue()
    assert out.getvalue().startswith("no drift: ")
    # someone edits the field in the CRM
    with (tmp_path / "out.jsonl").open("a") as f:
        f.write(
            json.dumps({"object": "Company", "record_id": "c1", "field": "won_mtd", "value": 1})
            + "\n"
        )
    out = io.StringIO()
    assert main(["audit", "--config", str(config)], out=out) == 1
    assert "drift: out Company c1 won_mtd: crm-pulse wrote 500, the CRM holds 1" in out.getvalue()


async def test_audit_reads_hubspot_back_and_finds_the_edit(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    fake = FakeHubSpot("t")
    fake.search_per_second = None
    home = fake.create("companies", {"name": "Home"})
    fake.add_property("companies", "crm_pulse_won")
    fake.add_property("companies", "crm_pulse_deals")
    closed = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for _ in range(3):
        fake.create(
            "deals",
            {"amount": "10", "dealstage": "closedwon", "pipeline": "default", "closedate": closed},
        )
    with FakeServer(fake.app(), ca=TestCA()) as server:
        ca = server.ca.cert_path if server.ca else ""
        deployment = load_config_text(
            f"connectors:\n  - hubspot: {{access_token: '${{T}}', base_url: '{server.url}', "
            f"ca_cert: '{ca}', objects: [deals]}}\n"
            "writeback:\n"
            f"  - {{metric: won_revenue, window: month, target: {{connector: hubspot, object: companies, record: '{home}', field: crm_pulse_won}}}}\n"
            f"  - {{metric: deals_won, window: month, target: {{connector: hubspot, object: companies, record: '{home}', field: crm_pulse_deals}}}}\n"
            f"runtime: {{state_path: '{tmp_path}/s.sqlite', debounce: 0s}}\n",
            env={"T": "t"},
        )
        rt = EmbeddedRuntime(deployment)
        try:
            await rt.pollers["hubspot"].poll_once()
            await rt.consume_all()
            await rt.flush_writes(drain=True)
        finally:
            await rt.close()
        assert fake.value("companies", home, "crm_pulse_won") == "30"
        out = io.StringIO()
        assert await audit(deployment, out) == 0
        assert out.getvalue() == "no drift: 2 field(s) hold what crm-pulse wrote\n"
        fake.update("companies", home, {"crm_pulse_deals": "7"})  # an admin edits it
        out = io.StringIO()
        assert await audit(deployment, out) == 1
    text = out.getvalue()
    assert (
        f"drift: hubspot companies {home} crm_pulse_deals: crm-pulse wrote 3, the CRM holds 7"
        in text
    )
    assert "crm_pulse_won" not in text
    assert "1 of 2 field(s) drifted" in text


def test_audit_without_a_state_file_says_what_to_do(tmp_path: Path) -> None:
    config = _deployment_file(tmp_path, [])
    err = io.StringIO()
    assert main(["audit", "--config", str(config)], err=err) == 2
    assert "run `crm-pulse run`" in err.getvalue()
