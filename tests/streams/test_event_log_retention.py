"""``runtime.event_log``: the compacted log replays to exactly the runtime's report, keeps one
event per record (what a stage history needs for objects that have one), and ``keep: all``
deletes nothing. The last reported values are kept for the write-back rules only."""

from __future__ import annotations

import io
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from crm_pulse.cli import main
from crm_pulse.config import load_config
from crm_pulse.streams.embedded.consumer import Consumer
from crm_pulse.streams.embedded.database import Database
from crm_pulse.streams.writeback import Planner

from ..server.test_ingress_http import free_port

AS_OF = ["--as-of", "2026-12-15", "--format", "jsonl"]
STAGES = ["qualify", "propose", "negotiate"]


def history(seed: int) -> list[dict[str, Any]]:
    """Versions out of order, re-reads, equal versions with different fields, deletes and
    late older upserts after them: what a log holds after months of polling and webhooks."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for i in range(40):
        for version in range(1, rng.randrange(2, 6)):
            status = rng.choice(["open", "won", "lost"])
            day = rng.randrange(1, 28)
            fields = {
                "status": status,
                "amount": str(rng.randrange(10, 900)),
                "owner_id": f"u{rng.randrange(4)}",
                "stage": rng.choice(STAGES),
                "stage_entered_at": f"2026-0{version}-{day:02d}T10:00:00Z",
                "created_at": "2026-01-02T10:00:00Z",
                "closed_at": None
                if status == "open"
                else f"2026-0{version + 4}-{day:02d}T10:00:00Z",
            }
            e = {"source": "crm", "object": "deal", "id": str(i), "op": "upsert"}
            events.append({**e, "version": version, "fields": fields})
            if rng.random() < 0.3:  # a re-read of the same version
                events.append({**e, "version": version, "fields": dict(fields)})
            if rng.random() < 0.2:  # the same version with other fields: the tie rule
                events.append({**e, "version": version, "fields": {**fields, "amount": "5"}})
        if rng.random() < 0.2:
            events.append(
                {"source": "crm", "object": "deal", "id": str(i), "op": "delete", "version": 3}
            )
    rng.shuffle(events)
    return events


def deployment_file(tmp_path: Path, events: list[dict[str, Any]], metrics: str, keep: str) -> Path:
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    config = tmp_path / "deploy.yaml"
    config.write_text(
        "connectors:\n"
        f"  - file: {{name: out, input: '{tmp_path / 'in.jsonl'}', path: '{tmp_path / 'out.jsonl'}'}}\n"
        f"{metrics}"
        "writeback:\n"
        "  - {metric: won_revenue, window: month, target: {connector: out, object: Company, record: c1, field: won_mtd}}\n"
        f"runtime: {{state_path: '{tmp_path / 's.sqlite'}', debounce: 0s, batch_size: 7, "
        f"listen: '127.0.0.1:{free_port()}', event_log: {{keep: {keep}, compact_every: 1}}}}\n"
    )
    return config


def backfill_and_compact(config: Path, tmp_path: Path, events: list[dict[str, Any]]) -> None:
    assert main(["backfill", "--config", str(config), "--no-progress"], out=io.StringIO()) == 0
    assert logged(tmp_path) < len(events)  # compacted as it went
    out = io.StringIO()
    assert main(["events", "compact", "--config", str(config)], out=out) == 0
    assert "event log compacted" in out.getvalue()


def logged(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "s.sqlite") as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def export_replay_report(config: Path, tmp_path: Path) -> tuple[str, str]:
    exported = tmp_path / "export.jsonl"
    assert (
        main(["events", "export", "--config", str(config), "-o", str(exported)], err=io.StringIO())
        == 0
    )
    report, replay = io.StringIO(), io.StringIO()
    assert main(["report", "--config", str(config), *AS_OF], out=report) == 0
    assert main(["replay", str(exported), "--config", str(config), *AS_OF], out=replay) == 0
    return report.getvalue(), replay.getvalue()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_compacted_log_replays_to_the_report_with_one_event_per_record(
    tmp_path: Path, seed: int
) -> None:
    events = history(seed)
    metrics = "metrics:\n  enable: [won_revenue, deals_won, win_rate, open_pipeline_value]\n"
    config = deployment_file(tmp_path, events, metrics, "latest")
    backfill_and_compact(config, tmp_path, events)
    records = len({e["id"] for e in events})
    assert logged(tmp_path) <= records + 1 < len(events)  # + the log's newest entry
    report, replay = export_replay_report(config, tmp_path)
    assert report == replay and "won_revenue" in report


@pytest.mark.parametrize("seed", [4, 5])
def test_objects_with_a_stage_history_keep_what_the_history_needs(
    tmp_path: Path, seed: int
) -> None:
    events = history(seed)
    metrics = "metrics:\n  enable: [won_revenue, stage_duration_days, win_rate]\n"
    config = deployment_file(tmp_path, events, metrics, "latest")
    backfill_and_compact(config, tmp_path, events)
    versions = len({(e["id"], e["version"]) for e in events})
    assert logged(tmp_path) <= versions + 1 < len(events)  # re-reads and ties are gone
    report, replay = export_replay_report(config, tmp_path)
    assert report == replay and "stage_duration_days" in report


def test_keep_all_deletes_nothing(tmp_path: Path) -> None:
    events = history(6)
    config = deployment_file(tmp_path, events, "", "all")
    assert main(["backfill", "--config", str(config), "--no-progress"], out=io.StringIO()) == 0
    assert logged(tmp_path) == len(events)
    report, replay = export_replay_report(config, tmp_path)
    assert report == replay


def test_last_reported_values_are_kept_for_the_rules_only(tmp_path: Path) -> None:
    config = deployment_file(tmp_path, history(7), "", "all")
    assert main(["backfill", "--config", str(config), "--no-progress"], out=io.StringIO()) == 0
    deployment = load_config(str(config), resolve_secrets=False)
    path = tmp_path / "s.sqlite"

    def reported() -> set[str]:
        with sqlite3.connect(path) as conn:
            return {k for (k,) in conn.execute("SELECT k FROM state WHERE k LIKE '(''o'',%'")}

    assert reported() and all("'won_revenue', ()" in k for k in reported())
    # a file written by a version that kept every metric's values (or by a removed rule)
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT key, value FROM state WHERE k LIKE '(''o'',%'").fetchone()
        import pickle

        key = pickle.loads(row[0])
        stale = ("o", "win_rate", ("owner_id", "u1"), key[3])
        conn.execute(
            "INSERT INTO state VALUES (?, ?, ?)",
            (repr(stale), pickle.dumps(stale, protocol=5), row[1]),
        )
    db = Database(path)
    try:
        catalog = deployment.catalog()
        consumer = Consumer(
            db,
            catalog,
            deployment.window_specs(),
            Planner(deployment.writeback, catalog),
            debounce=0.0,
            clock=lambda: 1.8e9,
        )
        assert consumer.store.get(stale) is None
        db.call(lambda: consumer.step(10))  # the next batch writes the state back
    finally:
        db.close()
    assert reported() and all("'won_revenue', ()" in k for k in reported())
