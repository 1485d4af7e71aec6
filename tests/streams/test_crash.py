"""kill -9 at random moments, many times: no event lost, none counted twice.

The runtime (a real ``crm-pulse run`` process) follows a JSONL file of canonical events that
keeps growing, and writes its values to a file sink. The test kills it with SIGKILL at random
points, restarts it, and finally lets it drain and stop on SIGTERM. Then:

* the log holds every input line exactly once, and the consumer consumed each exactly once;
* the metrics in the state file equal ``crm-pulse replay`` on the same events;
* the last value written to every field equals what a recompute says it should be.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crm_pulse.cli import main
from crm_pulse.config import load_config
from crm_pulse.connectors.file import read_values
from crm_pulse.metrics import Engine
from crm_pulse.metrics.events import Event
from crm_pulse.metrics.report import evaluate
from crm_pulse.streams.writeback import Planner, field_value

DEPLOY = """
timezone: UTC
connectors:
  - file: {{name: crm, input: "{input}", path: "{output}", poll_interval: 50ms, max_batch: 20}}
writeback:
  - {{metric: won_revenue, window: month, group: {{}}, target: {{connector: crm, object: Company, record: "c1", field: won_mtd}}}}
  - {{metric: win_rate, window: quarter, group: owner_id, target: {{connector: crm, object: User, field: win_rate_qtd}}}}
  - {{metric: won_revenue, window: quarter, group: account_id, target: {{connector: crm, object: Account, field: won_qtd}}}}
  - {{metric: activities, window: rolling:30d, group: owner_id, target: {{connector: crm, object: User, field: activities_30d}}}}
runtime:
  state_path: "{state}"
  listen: "127.0.0.1:{port}"
  batch_size: 40
  debounce: 0s
  tick: 1s
  log_level: warning
{checkpoint}"""

CHECKPOINTS = {
    # the defaults: while events keep coming, the state is written at the clean stop only, so
    # every start after a kill re-applies the whole log after the last stop's checkpoint
    "defaults": "",
    # often: kills land before, inside and after checkpoints of a few batches each, and the
    # log is compacted past the checkpoint (what a start re-applies is what compaction kept)
    "often": "  checkpoint: {events: 120, interval: 300ms}\n  event_log: {compact_every: 50}\n",
}


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def history(rng: random.Random, n: int, now: datetime) -> list[str]:
    """Deals and activities with updates, deletes, duplicates and stale versions."""
    lines: list[str] = []
    versions: dict[str, int] = {}
    for _ in range(n):
        i = rng.randrange(400)
        obj = "deal" if i < 250 else "activity"
        rid = str(i)
        version = versions.get(rid, 0) + rng.randrange(1, 4)
        if rng.random() < 0.1 and rid in versions:
            version = versions[rid] - 1  # stale: must change nothing
        else:
            versions[rid] = version
        t = now - timedelta(days=rng.uniform(1, 20))
        if rng.random() < 0.07:
            event = {"source": "crm", "object": obj, "id": rid, "op": "delete", "version": version}
        elif obj == "deal":
            status = rng.choice(["open", "won", "lost"])
            event = {
                "source": "crm",
                "object": obj,
                "id": rid,
                "op": "upsert",
                "version": version,
                "fields": {
                    "owner_id": f"u{rng.randrange(6)}",
                    "account_id": f"a{rng.randrange(30)}",
                    "status": status,
                    "type": "new",
                    "amount": str(rng.randrange(100, 9000)),
                    "created_at": _iso(t - timedelta(days=3)),
                    "closed_at": None if status == "open" else _iso(t),
                },
            }
        else:
            event = {
                "source": "crm",
                "object": obj,
                "id": rid,
                "op": "upsert",
                "version": version,
                "fields": {
                    "owner_id": f"u{rng.randrange(6)}",
                    "type": rng.choice(["call", "email"]),
                    "occurred_at": _iso(t),
                },
            }
        line = json.dumps(event)
        lines.append(line)
        if rng.random() < 0.05:
            lines.append(line)  # a duplicate delivery
    return lines


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    with log.open("ab") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "crm_pulse.cli", "run", "--config", str(config)],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
        )


def healthy(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def settled(port: int) -> bool:
    """The runtime's ``/status``: every event logged is consumed, no field write is queued,
    and a time tick has run."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as answer:
            status = json.load(answer)
    except OSError:
        return False
    return bool(
        status["log_position"] > 0
        and status["backlog"] == 0
        and status["outbox_depth"] == 0
        and "first" in status["tick_seconds"]
    )


def progress(state: Path) -> tuple[int, int, int]:
    """(log end, consumed position, input bytes read) from the state file, read-only."""
    if not state.exists():
        return 0, 0, 0
    conn = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5)
    try:
        # the log's last position (= its rows, unless compaction deleted some before it)
        rows = conn.execute(
            "SELECT coalesce(MAX(position), 0) FROM events WHERE connector = 'crm'"
        ).fetchone()[0]
        consumed = conn.execute("SELECT value FROM meta WHERE name = 'consumed'").fetchone()
        cursor = conn.execute("SELECT cursor FROM cursors WHERE mode = 'poll'").fetchone()
        offset = json.loads(cursor[0]).get("offset", 0) if cursor else 0
        return int(rows), int(consumed[0]) if consumed else 0, int(offset)
    except sqlite3.OperationalError:
        return 0, 0, 0
    finally:
        conn.close()


def state_position(state: Path) -> int:
    """The log position of the state in the file (its last checkpoint), read-only."""
    if not state.exists():
        return 0
    conn = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute("SELECT value FROM meta WHERE name = 'state_at'").fetchone()
        return int(row[0]) if row else 0
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


@pytest.mark.parametrize("checkpoints", sorted(CHECKPOINTS))
def test_kill_9_at_random_points_loses_and_doubles_nothing(
    tmp_path: Path, checkpoints: str
) -> None:
    rng = random.Random(20261123)
    now = datetime.now(UTC)
    lines = history(rng, 6000, now)
    events_file, output, state = (
        tmp_path / "in.jsonl",
        tmp_path / "out.jsonl",
        tmp_path / "s.sqlite",
    )
    config = tmp_path / "deploy.yaml"
    from ..server.test_ingress_http import free_port  # other test runs may hold 8080

    port = free_port()
    config.write_text(
        DEPLOY.format(
            input=events_file,
            output=output,
            state=state,
            port=port,
            checkpoint=CHECKPOINTS[checkpoints],
        )
    )
    log = tmp_path / "runtime.log"
    events_file.write_text("")
    chunks = [lines[i : i + 500] for i in range(0, len(lines), 500)]
    kills = 0
    mid_stream = 0  # kills that left read-but-unconsumed events or unread input behind
    behind = 0  # kills that left a checkpoint behind the consumed position
    for n, chunk in enumerate(chunks):  # events keep arriving while the runtime is killed
        with events_file.open("a") as f:
            f.write("\n".join(chunk) + "\n")
        before = progress(state)
        proc = start(config, log)
        if n % 2 == 0:  # at a random moment
            time.sleep(rng.uniform(0.3, 2.5))
        else:  # at a random moment once work is visibly under way
            deadline = time.monotonic() + 30
            while progress(state)[1] == before[1] and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        rows, consumed, offset = progress(state)
        if rows and (consumed < rows or offset < events_file.stat().st_size):
            mid_stream += 1
        checkpoint = state_position(state)
        if 0 < checkpoint < consumed:
            behind += 1  # a start re-applies the log after a checkpoint
    assert kills >= 10
    if checkpoints == "often":
        assert behind >= 2, "some kills should land between two checkpoints"
    assert mid_stream >= 3, "the kills should interrupt work in progress"
    # a last run drains everything and stops cleanly on SIGTERM
    proc = start(config, log)
    size = events_file.stat().st_size
    deadline = time.monotonic() + 120
    while not healthy(port):  # up, its signal handlers installed (a SIGTERM before ends it -15)
        assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.1)
    # every line read and consumed, the outbox flushed and a tick run, as /status says
    while not (progress(state)[2] == size and settled(port)):
        assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]

    # 1. every line is in the log exactly once, and was consumed exactly once
    conn = sqlite3.connect(state)
    logged = [
        r[0]
        for r in conn.execute("SELECT body FROM events WHERE connector='crm' ORDER BY position")
    ]
    consumed_events = int(
        conn.execute("SELECT value FROM meta WHERE name='consumed_events'").fetchone()[0]
    )
    total_rows = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    outbox = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    conn.close()
    if checkpoints == "often":  # compacted: each record's deciding event is what is left
        assert len(logged) < len(lines) and consumed_events == len(lines)
    else:
        assert [Event.model_validate_json(b) for b in logged] == [
            Event.model_validate_json(x) for x in lines
        ]
        assert consumed_events == total_rows

    # 2. the runtime's metrics equal replay on the same events
    as_of = _iso(now + timedelta(minutes=1))
    got, want = io.StringIO(), io.StringIO()
    assert main(["report", "--config", str(config), "--as-of", as_of], out=got) == 0
    assert (
        main(
            [
                "replay",
                str(events_file),
                "--config",
                str(config),
                "--as-of",
                as_of,
                "--window",
                "rolling:30d",
            ],
            out=want,
        )
        == 0
    )
    assert got.getvalue() == want.getvalue()
    assert len(got.getvalue().splitlines()) > 50

    # 3. the sink holds, for every field, the value a recompute calls for
    deployment = load_config(config)
    engine = Engine(deployment.catalog(), windows=deployment.window_specs())
    engine.apply_all(Event.model_validate_json(x) for x in lines)
    as_of_ms = int(time.time() * 1000)
    planner = Planner(deployment.writeback, engine.catalog)
    expected = {
        (w.object, w.record_id, w.field): w.value
        for w in planner.plan(engine.report(as_of_ms, keep_null=True), as_of_ms)
    }
    assert outbox == 0
    written = read_values(output)
    # a group that lost all its records has no row in the report: its field keeps the value of
    # an empty window (0 for counts and sums), which a recompute for that group confirms
    for obj, rid, fld in written:
        if (obj, rid, fld) not in expected:
            (rule,) = [r for r in deployment.writeback if r.target.field == fld]
            group = (rule.group[0], rid)
            window = planner.target_window(rule, as_of_ms)
            metric = engine.catalog.metrics[rule.metric]
            recomputed = evaluate(engine.catalog, engine, metric, group, window, as_of_ms)
            expected[(obj, rid, fld)] = field_value(recomputed)
    assert written == expected, diagnose(state, written, expected)


def diagnose(state: Path, written: dict[Any, Any], expected: dict[Any, Any]) -> str:
    """For a failure: each differing field with what the state's ``written`` table and outbox
    say (``written`` ahead of or behind the sink tells which side lost the value)."""
    conn = sqlite3.connect(state)
    try:
        lines = []
        for key in sorted(set(written) | set(expected), key=str):
            if written.get(key) == expected.get(key):
                continue
            where = (*key,)
            row = conn.execute(
                "SELECT value, written_ms FROM written WHERE object=? AND record_id=? AND field=?",
                where,
            ).fetchone()
            pending = conn.execute(
                "SELECT value, seq, attempts FROM outbox WHERE object=? AND record_id=? AND field=?",
                where,
            ).fetchone()
            lines.append(
                f"{key}: sink {written.get(key)!r}, recompute {expected.get(key)!r}, "
                f"state written {row!r}, outbox {pending!r}"
            )
        return "\n".join(lines)
    finally:
        conn.close()
