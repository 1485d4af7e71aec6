"""``crm-pulse run`` as a user starts it: ingress in, file sink out, SIGTERM drains; --dry-run."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from crm_pulse.cli import main
from crm_pulse.connectors.events import sign
from crm_pulse.connectors.file import read_values

from ..server.test_ingress_http import deal, free_port

SECRET = "run-command-secret-0123456789"

DEPLOY = """
timezone: UTC
connectors:
  - events: {{secret: "${{INGRESS_SECRET}}"}}
  - file: {{name: out, path: "{out}"}}
writeback:
  - {{metric: won_revenue, window: month, group: {{}}, target: {{connector: out, object: Company, record: "c1", field: won_mtd}}}}
  - {{metric: deals_won, window: month, group: owner_id, target: {{connector: out, object: User, field: won_count_mtd}}}}
runtime:
  state_path: "{state}"
  listen: "127.0.0.1:{port}"
  debounce: 30s
"""


def post(port: int, payload: object) -> int:
    body = json.dumps(payload).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/events", data=body, headers=sign(SECRET, body)
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return int(r.status)


def test_run_serves_the_ingress_and_sigterm_drains_everything(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "deploy.yaml"
    config.write_text(
        DEPLOY.format(out=tmp_path / "out.jsonl", state=tmp_path / "s.sqlite", port=port)
    )
    env = {**os.environ, "INGRESS_SECRET": SECRET}
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "crm_pulse.cli", "run", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        batches = [[deal(i, amount="100") for i in range(j * 10, j * 10 + 10)] for j in range(5)]
        for batch in batches:
            for event in batch:
                event["fields"]["owner_id"] = f"u{int(event['id']) % 3}"
        statuses = [post(port, batch) for batch in batches]
        assert statuses == [200] * 5
        # the debounce is 30 s: nothing is written yet; SIGTERM must still deliver the writes
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    text = (tmp_path / "run.log").read_text()
    assert SECRET not in text
    values = read_values(tmp_path / "out.jsonl")
    assert values[("Company", "c1", "won_mtd")] == 5000
    assert values[("User", "u0", "won_count_mtd")] == 17
    # the state agrees with replay of what was sent
    out = io.StringIO()
    assert main(["report", "--config", str(config), "--format", "csv"], out=out) == 0
    assert "won_revenue" in out.getvalue()


def test_dry_run_prints_old_and_new_values_and_writes_nothing(tmp_path: Path) -> None:
    events = tmp_path / "in.jsonl"
    events.write_text("\n".join(json.dumps(deal(i, amount="10")) for i in range(3)) + "\n")
    config = tmp_path / "deploy.yaml"
    config.write_text(
        "connectors:\n"
        f"  - file: {{name: out, input: '{events}', path: '{tmp_path / 'out.jsonl'}'}}\n"
        "writeback:\n"
        "  - {metric: won_revenue, window: month, target: {connector: out, object: Company, record: c1, field: won_mtd}}\n"
        f"runtime: {{state_path: '{tmp_path / 's.sqlite'}'}}\n"
    )
    out = io.StringIO()
    assert main(["run", "--config", str(config), "--dry-run"], out=out) == 0
    text = out.getvalue()
    assert "out: 3 event(s) polled" in text
    assert "out Company c1 won_mtd: (never written) -> 30" in text
    assert "nothing was sent and nothing on disk changed (--dry-run)" in text
    assert not (tmp_path / "out.jsonl").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deploy.yaml", "in.jsonl"]  # no state
    # with a state file: a dry run leaves every byte of it as it was
    assert main(["backfill", "--config", str(config), "--no-progress"], out=io.StringIO()) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    events.write_text(events.read_text() + json.dumps(deal(7, amount="5")) + "\n")
    before["in.jsonl"] = events.read_bytes()
    out = io.StringIO()
    assert main(["run", "--config", str(config), "--dry-run"], out=out) == 0
    assert "out: 1 event(s) polled" in out.getvalue()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
