"""Embedded runtime against the engine, and the embedded runtime at scale (issue 17, items 1, 8).

    .venv/bin/python benchmarks/embedded.py                     # ratio, 50,000 events
    .venv/bin/python benchmarks/embedded.py --events 20000 --profile /tmp/emb.txt
    .venv/bin/python benchmarks/embedded.py --scale 1000000     # the 10^6-record run (minutes)
    .venv/bin/python benchmarks/embedded.py --recovery 1000000  # kill -9 with the longest log
                                                                # after a checkpoint, then a start

Ratio mode: ``crm-pulse run`` on a ``file`` source, started and warm, then N deal events
appended to the file it follows; timed until the sink holds the value a recompute gives. The
engine's replay rate (parse + apply + changes, as ``crm-pulse replay``, best of 3) on the same
lines in the same run: **embedded / engine**. ``--profile`` runs the runtime under py-spy
(``pip install py-spy``) and writes a flat profile of the timed part.

Scale mode: N records of the engine benchmark's mix (deals, activities, contacts, tickets, NPS
surveys; about 50,000 accounts) and 15 % updates spread among them, in one JSONL file; ``crm-pulse run`` with
four write-back rules (one per account) reads it from the start. Reported: events/s per
interval while it loads (is the per-event cost flat?), RSS after the load, then after a
SIGTERM and a restart: the time to the first ``/status`` answer (it answers while the state
loads), until the state is loaded and caught up, the first tick's duration, RSS once it
answers, and the state file's size.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faust_runtime import events as deals  # the same deal events as the Faust benchmark

RULES = """
  - {{metric: won_revenue, window: month, target: {{connector: crm, object: Company, record: c1, field: won_mtd}}}}
  - {{metric: win_rate, window: quarter, group: owner_id, target: {{connector: crm, object: User, field: win_rate_qtd}}}}
"""
RATIO = (
    """
timezone: UTC
connectors:
  - file: {{name: crm, input: "{input}", path: "{out}", max_batch: 100, poll_interval: 50ms}}
writeback:"""
    + RULES
    + """runtime: {{state_path: "{state}", debounce: 50ms, batch_size: 2000, log_level: error,
  listen: "127.0.0.1:{port}"}}
"""
)
SCALE = (
    """
timezone: UTC
connectors:
  - file: {{name: crm, input: "{input}", path: "{out}", max_batch: 100, poll_interval: 1s}}
writeback:"""
    + RULES
    + """  - {{metric: won_revenue, window: year, group: account_id, target: {{connector: crm, object: Account, field: won_ytd}}}}
  - {{metric: deals_won, window: rolling:30d, group: {{}}, target: {{connector: crm, object: Company, record: c1, field: won_30d}}}}
runtime: {{state_path: "{state}", debounce: 2s, batch_size: 5000, log_level: warning,
  listen: "127.0.0.1:{port}"}}
"""
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def warm(name: str, amount: int = 1) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    fields = {"owner_id": "u0", "status": "won", "type": "new", "amount": str(amount)}
    return {
        "source": "crm",
        "object": "deal",
        "id": name,
        "op": "upsert",
        "version": 1,
        "fields": {**fields, "created_at": now, "closed_at": now},
    }


def sink_total(path: Path) -> Any:
    """The last value of the company-wide ``won_mtd`` field in the file sink."""
    try:
        with path.open("rb") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    # complete lines only: the sink may be writing the last one while it is read
    lines = text[: text.rfind(b"\n") + 1].splitlines()
    for line in reversed(lines):
        row = json.loads(line)
        if row["field"] == "won_mtd":
            return row["value"]
    return None


def wait_for_total(path: Path, want: int, timeout: float = 900) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if sink_total(path) == want:
            return time.perf_counter() - started
        time.sleep(0.02)
    raise TimeoutError(f"the sink never reached {want} (last {sink_total(path)})")


def start(config: Path, profile: Path | None = None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "crm_pulse.cli", "run", "--config", str(config)]
    if profile is not None:
        spy = Path(sys.executable).with_name("py-spy")
        command = [
            str(spy),
            "record",
            "--gil",
            "-r",
            "100",
            "-f",
            "raw",
            "-o",
            str(profile),
            "--",
            *command,
        ]
    return subprocess.Popen(command, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def python_pid(proc: subprocess.Popen[bytes]) -> int:
    """The runtime's pid (py-spy's child when it runs under py-spy)."""
    if not Path(proc.args[0]).name.startswith("py-spy"):  # type: ignore[index]
        return proc.pid
    kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    for _ in range(200):
        pids = kids.read_text().split() if kids.exists() else []
        if pids:
            return int(pids[0])
        time.sleep(0.05)
    return proc.pid


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    os.kill(python_pid(proc), sig)
    proc.wait(300)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def status(port: int, timeout: float = 30) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=timeout) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data
    except OSError:
        return None


def engine_replay(lines: list[str], config: Path) -> tuple[float, float]:
    """Events per second of the engine alone on the same lines (parse + apply + changes),
    best of 3: per wall second and per CPU second."""
    import crm_pulse.metrics
    from crm_pulse.config import load_config
    from crm_pulse.metrics import Engine, Event

    # what the runtime parses its log with (the same events; pydantic's before session 3)
    parse_event = getattr(crm_pulse.metrics, "decode_event", Event.model_validate_json)
    deployment = load_config(config, resolve_secrets=False)
    best = best_cpu = 0.0
    for _ in range(3):
        engine = Engine(deployment.catalog(), windows=deployment.window_specs())
        t0, c0 = time.perf_counter(), time.process_time()
        engine.apply_all(parse_event(line) for line in lines)
        engine.changes(int(time.time() * 1000))
        best = max(best, len(lines) / (time.perf_counter() - t0))
        best_cpu = max(best_cpu, len(lines) / (time.process_time() - c0))
    return best, best_cpu


def ratio(n: int, profile: Path | None) -> dict[str, Any]:
    data = deals(n)
    want = sum(int(e["fields"]["amount"]) for e in data if e["fields"]["status"] == "won")
    lines = [json.dumps(e) for e in data]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        source, out = tmp / "in.jsonl", tmp / "out.jsonl"
        source.write_text(json.dumps(warm("warm-up")) + "\n")
        config = tmp / "embedded.yaml"
        port = free_port()
        config.write_text(RATIO.format(input=source, out=out, state=tmp / "s.sqlite", port=port))
        proc = start(config, profile)
        try:
            wait_for_total(out, 1, timeout=120)
            pid = python_pid(proc)
            cpu = cpu_seconds(pid)
            t0 = time.perf_counter()
            with source.open("a") as f:
                f.write("".join(line + "\n" for line in lines))
            wait_for_total(out, want + 1)
            elapsed = time.perf_counter() - t0
            cpu = cpu_seconds(pid) - cpu
        finally:
            stop(proc)
        embedded = n / elapsed
        engine, engine_cpu = engine_replay(lines, config)
    return {
        "events": n,
        "embedded_events_per_s": round(embedded),
        "engine_replay_events_per_s": round(engine),
        "embedded_over_engine": round(embedded / engine, 3),
        "embedded_cpu_share": round(cpu / elapsed, 2),  # CPU seconds per wall second
        # the same per CPU second (what each costs, whatever share of a core it got)
        "embedded_events_per_cpu_s": round(n / cpu),
        "engine_events_per_cpu_s": round(engine_cpu),
        "embedded_over_engine_cpu": round(n / cpu / engine_cpu, 3),
        "load_average": round(os.getloadavg()[0], 1),
    }


# ------------------------------------------------------------------ scale
START = datetime(2025, 1, 1, tzinfo=UTC)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def record(rng: random.Random, i: int, version: int, accounts: int) -> str:
    """One event for record i, the mix of ``benchmarks/engine.py`` with ``accounts`` accounts."""
    t = START + timedelta(minutes=rng.randrange(0, 60 * 24 * 690))
    account = f"a{rng.randrange(accounts)}"
    owner = f"u{rng.randrange(40)}"
    kind = i % 10
    fields: dict[str, Any]
    if kind < 4:
        obj, state = "deal", rng.choice(["open", "open", "won", "lost"])
        fields = {
            "account_id": account,
            "owner_id": owner,
            "pipeline": "default",
            "stage": rng.choice(["s1", "s2", "s3", "s4"]),
            "stage_entered_at": _iso(t),
            "status": state,
            "type": rng.choice(["new", "upsell", "renewal", "other"]),
            "amount": f"{rng.randrange(100, 50000)}.{rng.randrange(100):02d}",
            "created_at": _iso(t - timedelta(days=20)),
            "closed_at": _iso(t) if state != "open" else None,
        }
    elif kind < 7:
        obj = "activity"
        kinds = ["call", "email", "meeting", "task", "note"]
        fields = {
            "owner_id": owner,
            "account_id": account,
            "type": rng.choice(kinds),
            "occurred_at": _iso(t),
        }
    elif kind == 7:
        obj = "contact"
        fields = {
            "account_id": account,
            "email": f"p{i}@x.com",
            "lifecycle": rng.choice(["lead", "customer", "other"]),
            "created_at": _iso(t),
            "converted_at": None,
        }
    elif kind == 8:
        obj = "ticket"
        fields = {
            "owner_id": owner,
            "account_id": account,
            "status": "closed",
            "created_at": _iso(t - timedelta(hours=30)),
            "closed_at": _iso(t),
        }
    else:
        obj = "survey_response"
        fields = {
            "account_id": account,
            "survey": "nps",
            "score": rng.randrange(11),
            "submitted_at": _iso(t),
        }
    event = {"source": "crm", "object": obj, "id": str(i), "op": "upsert", "version": version}
    return json.dumps({**event, "fields": fields})


def _measured(series: list[dict[str, Any]], total: int) -> int:
    """The events the per-quarter figures cover: up to the last sample taken while the load
    was still under way. The sample that sees the end of the load also holds what followed it
    (the first writes: every rule's whole value planned, put in the outbox and sent, once per
    deployment when the file source finished its first read, which is at this load's end)."""
    if len(series) > 2 and series[-1]["consumed"] >= total:
        return int(series[-2]["consumed"])
    return total


def _cpu_at(series: list[dict[str, Any]]) -> Callable[[float], float]:
    points = [(0, 0.0)] + [(s["consumed"], s["cpu_s"]) for s in series]

    def cpu_at(events: float) -> float:
        for (e0, c0), (e1, c1) in pairwise(points):
            if e0 <= events <= e1 and e1 > e0:
                return float(c0 + (c1 - c0) * (events - e0) / (e1 - e0))
        return float(points[-1][1])

    return cpu_at


def quarters(series: list[dict[str, Any]], total: int) -> dict[str, Any]:
    """Events per CPU second in each quarter of the load (of its first :func:`_measured`
    events), from the cumulative CPU seconds at each sample (interpolated at the quarter's
    bounds): a checkpoint or a collector pass counts in the quarter where its CPU was spent,
    and a quarter is weighted by its events."""
    span = _measured(series, total)
    cpu_at = _cpu_at(series)
    bounds = [span * k / 4 for k in range(5)]
    rates = [round((b - a) / max(cpu_at(b) - cpu_at(a), 1e-3)) for a, b in pairwise(bounds)]
    return {
        "quarters_of_events": span,
        "events_per_cpu_s_by_quarter": rates,
        "events_per_cpu_s_first_quarter": rates[0],
        "events_per_cpu_s_last_quarter": rates[-1],
        # per-event cost of the last quarter over the first (1.0 = flat)
        "per_event_cost_last_over_first": round(rates[0] / rates[-1], 2),
    }


def amortized_quarters(
    series: list[dict[str, Any]],
    checkpoints: list[dict[str, Any]],
    total: int,
    compactions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Per-event cost by quarter (of the first :func:`_measured` events) with each state
    checkpoint's CPU counted for the events it holds (those after the previous checkpoint)
    instead of where it ran: the checkpoints of a load come at 1.25x intervals, so "where it
    ran" puts a checkpoint of the third quarter's events into the fourth and none of the
    fourth's. Needs the runtime's ``/status`` ``checkpoints`` (CPU of the database thread per
    checkpoint), including the one after the load, and the samples' times. The event log's
    compactions (``compactions``: each scans the whole applied log, once the log grew by as
    many events as the last one kept) are counted the same way, for the events applied since
    the previous one."""
    if not checkpoints or checkpoints[-1]["position"] != total or "at_ms" not in series[0]:
        return {}
    span = _measured(series, total)
    # the batches' CPU alone: each sample's cumulative CPU without the checkpoints that had
    # ended by then (a checkpoint's position can be one batch past the sample that holds it)
    compacted = []  # as (after, position, cpu_s, at_ms), like the checkpoints
    previous = 0
    for c in compactions or []:
        compacted.append({**c, "after": previous})
        previous = c["position"]
    periodic = [*checkpoints, *compacted]
    batches = [
        {
            **s,
            "cpu_s": s["cpu_s"]
            - sum(c["cpu_s"] for c in periodic if c["at_ms"] <= s.get("at_ms", 0)),
        }
        for s in series
    ]
    cpu_at = _cpu_at(batches)
    bounds = [span * k / 4 for k in range(5)]
    spent = [cpu_at(b) - cpu_at(a) for a, b in pairwise(bounds)]
    checkpoint_share = [0.0] * 4
    compaction_share = [0.0] * 4
    for c in periodic:
        after, position = c["after"], c["position"]
        shares = compaction_share if "scanned" in c else checkpoint_share
        for q, (a, b) in enumerate(pairwise(bounds)):
            share = c["cpu_s"] * max(0.0, min(b, position) - max(a, after)) / (position - after)
            spent[q] += share
            shares[q] += share
    rates = [round((span / 4) / max(x, 1e-3)) for x in spent]
    return {
        "amortized_events_per_cpu_s_by_quarter": rates,
        "amortized_us_per_event_by_quarter": [round(1e6 / r) for r in rates],
        "of_which_checkpoints_us_per_event": [
            round(x / (span / 4) * 1e6) for x in checkpoint_share
        ],
        "of_which_compactions_us_per_event": [
            round(x / (span / 4) * 1e6) for x in compaction_share
        ],
        "amortized_per_event_cost_last_over_first": round(rates[0] / rates[-1], 2),
        "checkpoint_cpu_s": round(sum(c["cpu_s"] for c in checkpoints), 1),
    }


def scale(
    n: int, interval: float, profile: Path | None = None, *, kill: bool = False
) -> dict[str, Any]:
    rng = random.Random(11)
    updates = n * 15 // 100
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp_name:
        tmp = Path(tmp_name)
        source, out, state = tmp / "in.jsonl", tmp / "out.jsonl", tmp / "s.sqlite"
        # updates (15 % of the events, of records created earlier) spread through the file,
        # so that the mix of events is the same at every point of the load
        total = 0
        with source.open("w") as f:
            for i in range(n):
                f.write(record(rng, i, 1, 50_000) + "\n")
                total += 1
                if i >= 100 and rng.random() < updates / n:
                    f.write(record(rng, rng.randrange(i), 2 + i, 50_000) + "\n")
                    total += 1
        port = free_port()
        config = tmp / "scale.yaml"
        config.write_text(SCALE.format(input=source, out=out, state=state, port=port))
        result: dict[str, Any] = {"records": n, "events": total}
        proc = start(config, profile)
        pid = python_pid(proc)
        began = time.perf_counter()
        cpu_start = cpu_seconds(pid)
        checkpoints: dict[int, dict[str, Any]] = {}  # by position, from /status
        compactions: dict[int, dict[str, Any]] = {}
        series: list[dict[str, Any]] = []
        try:
            last_t, last_n, last_cpu = began, 0, cpu_seconds(pid)
            while True:
                time.sleep(interval)
                answer = status(port, timeout=interval)
                now, cpu = time.perf_counter(), cpu_seconds(pid)
                if answer is None:
                    continue
                done = answer["consumed_position"]
                for c in answer.get("checkpoints", []):
                    checkpoints[c["position"]] = c
                for c in answer.get("compactions", []):
                    compactions[c["position"]] = c
                rate = (done - last_n) / (now - last_t)
                series.append(
                    {
                        "t_s": round(now - began, 1),
                        "at_ms": int(time.time() * 1000),
                        "consumed": done,
                        "cpu_s": round(cpu - cpu_start, 2),
                        "events_per_s": round(rate),
                        # per CPU second: what an event costs, whatever share of a core the
                        # process got on the shared machine
                        "events_per_cpu_s": round((done - last_n) / max(cpu - last_cpu, 1e-3)),
                        "cpu_share": round((cpu - last_cpu) / (now - last_t), 2),
                        "rss_mb": round(rss_mb(pid)),
                    }
                )
                print(json.dumps(series[-1]), file=sys.stderr, flush=True)
                last_t, last_n, last_cpu = now, done, cpu
                if done >= total and answer["log_position"] >= total:
                    break
            result["load_s"] = round(time.perf_counter() - began, 1)
            load_end_ms = int(time.time() * 1000)
            cpu_load = cpu_seconds(pid)
            result["series"] = series
            result["rss_after_load_mb"] = round(rss_mb(pid))
            time.sleep(3)  # a tick after the load
            later = status(port) or {}
            result["load_tick_seconds"] = later.get("tick_seconds")
            result["checkpoint_position_after_load"] = later.get("checkpoint_position")
            # the checkpoint of the load's last events (the runtime is idle now: it comes
            # `checkpoint.interval` after the last one), so that every event's share is counted
            waited = time.perf_counter()
            while (
                later.get("checkpoint_position", total) != total  # (absent: no checkpoints)
                and time.perf_counter() - waited < 600
            ):
                time.sleep(1)
                later = status(port, timeout=60) or later
            for c in later.get("checkpoints", []):
                c["after_load"] = c["position"] not in checkpoints and c["at_ms"] > load_end_ms
                checkpoints.setdefault(c["position"], c)
            result["cpu_s_load_and_last_checkpoint"] = round(cpu_seconds(pid) - cpu_start, 1)
            result["checkpoints"] = [checkpoints[p] for p in sorted(checkpoints)]
            for c in later.get("compactions", []):
                compactions.setdefault(c["position"], c)
            result["compactions"] = [compactions[p] for p in sorted(compactions)]
            # once per deployment, at the end of the first read: every rule's whole value
            result["first_writes_cpu_s"] = later.get("first_writes_cpu_s")
        finally:
            stopping = time.perf_counter()
            # SIGTERM: a clean stop writes a checkpoint; SIGKILL (--kill): the restart below
            # re-applies the log after the last checkpoint of the load
            stop(proc, signal.SIGKILL if kill else signal.SIGTERM)
            result["stop_s" if not kill else "killed"] = (
                round(time.perf_counter() - stopping, 1) if not kill else True
            )
        result["state_file_mb"] = round(state.stat().st_size / 2**20)
        began = time.perf_counter()
        proc = start(config, profile.with_suffix(".restart.txt") if profile else None)
        try:
            pid = python_pid(proc)
            while (answer := status(port, timeout=5)) is None:
                time.sleep(0.05)
            result["restart_first_status_s"] = round(time.perf_counter() - began, 1)
            result["restart_first_status"] = answer.get("starting")
            # until it loaded the state, caught up and ticked once (/status says each)
            while not (answer.get("starting") is None and (answer.get("tick_seconds") or {})):
                time.sleep(0.2)
                answer = status(port, timeout=30) or answer
                if answer.get("starting") is None and "restart_ready_s" not in result:
                    result["restart_ready_s"] = round(time.perf_counter() - began, 1)
            result["restart_first_tick_s"] = answer["tick_seconds"].get("first")
            result["rss_after_restart_mb"] = round(rss_mb(pid))
            time.sleep(10)
            result["rss_after_restart_10s_mb"] = round(rss_mb(pid))
        finally:
            stop(proc)
    # per-event cost over time (1.0 = flat), from the cumulative CPU
    result.update(quarters(series, total))
    result.update(amortized_quarters(series, result["checkpoints"], total, result["compactions"]))
    result["cpu_s_load"] = round(cpu_load, 1)
    result["events_per_cpu_s_overall"] = round(total / cpu_load)
    result["events_per_s_overall"] = round(total / result["load_s"])
    result["rss_restart_over_load"] = round(
        result["rss_after_restart_10s_mb"] / result["rss_after_load_mb"], 2
    )
    return result


def recovery(n: int) -> dict[str, Any]:
    """A load of ``n`` records (scale mode's file and rules) killed (SIGKILL) just before a
    checkpoint is due, when the log after the last checkpoint is longest (a quarter of the
    events applied); then a start: how long it loads the checkpoint, re-applies the log after
    it (``/status`` says each phase), and until it is ready."""
    rng = random.Random(11)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp_name:
        tmp = Path(tmp_name)
        source, out, state = tmp / "in.jsonl", tmp / "out.jsonl", tmp / "s.sqlite"
        with source.open("w") as f:
            for i in range(n):
                f.write(record(rng, i, 1, 50_000) + "\n")
        port = free_port()
        config = tmp / "scale.yaml"
        config.write_text(SCALE.format(input=source, out=out, state=state, port=port))
        proc = start(config)
        result: dict[str, Any] = {"records": n}
        try:
            while True:  # the tail grows to a quarter of what was applied before a checkpoint
                time.sleep(0.2)
                answer = status(port, timeout=30) or {}
                done = answer.get("consumed_position", 0)
                behind = done - answer.get("checkpoint_position", 0)
                if done > n // 2 and behind >= 0.22 * done:
                    break
        finally:
            stop(proc, signal.SIGKILL)
        result["killed_at"] = done
        result["log_after_checkpoint"] = behind
        began = time.perf_counter()
        proc = start(config)
        phases: dict[str, float] = {}
        try:
            while True:
                answer = status(port, timeout=30) or {}
                phase = (answer.get("starting") or {}).get("phase") if answer else "no answer"
                if answer and answer.get("starting") is None:
                    phases.setdefault("ready", round(time.perf_counter() - began, 1))
                    break
                phases.setdefault(str(phase), round(time.perf_counter() - began, 1))
                time.sleep(0.1)
        finally:
            stop(proc)
        result["seconds_until_each_phase"] = phases
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="ratio mode: events")
    parser.add_argument("--profile", type=Path, help="py-spy raw profile (of the first run)")
    parser.add_argument("--scale", type=int, help="scale mode: this many records")
    parser.add_argument("--interval", type=float, default=5.0, help="scale mode: seconds")
    parser.add_argument(
        "--kill",
        action="store_true",
        help="scale mode: SIGKILL after the load instead of SIGTERM (the restart then re-applies "
        "the log after the last checkpoint)",
    )
    parser.add_argument(
        "--recovery",
        type=int,
        help="recovery mode: this many records, SIGKILL when the log after the last "
        "checkpoint is longest, then a start",
    )
    args = parser.parse_args(argv)
    if args.recovery:
        result = recovery(args.recovery)
    elif args.scale:
        result = scale(args.scale, args.interval, args.profile, kill=args.kill)
    else:
        result = ratio(args.events, args.profile)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
