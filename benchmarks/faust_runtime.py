"""Faust runtime benchmark: one worker against the embedded runtime, in the same run.

    .venv/bin/python benchmarks/faust_runtime.py [--events 20000]

Starts a throw-away Kafka (scripts/kafka/broker.py) and reports:

* events/s through one Faust worker (publish N events, time until the sink holds the values a
  recompute gives) and through the embedded runtime on the same events (a file source), and
  their ratio;
* end-to-end latency publish -> value written to the sink, p50/p99 over single changes;
* recovery: a worker killed with SIGKILL, a new one started: time until it writes again (table
  recovery from the changelog included).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
FAUST = """
timezone: UTC
connectors:
  - file: {{name: crm, path: "{out}", max_batch: 100}}
writeback:
  - {{metric: won_revenue, window: month, target: {{connector: crm, object: Company, record: c1, field: won_mtd}}}}
  - {{metric: win_rate, window: quarter, group: owner_id, target: {{connector: crm, object: User, field: win_rate_qtd}}}}
runtime:
  kind: faust
  debounce: 50ms
  tick: 1h
  faust: {{app_id: "{app}", broker: "kafka://{broker}", partitions: 4, store: memory, standby_replicas: 0}}
"""
EMBEDDED = """
timezone: UTC
connectors:
  - file: {{name: crm, input: "{input}", path: "{out}", max_batch: 100, poll_interval: 50ms}}
writeback:
  - {{metric: won_revenue, window: month, target: {{connector: crm, object: Company, record: c1, field: won_mtd}}}}
  - {{metric: win_rate, window: quarter, group: owner_id, target: {{connector: crm, object: User, field: win_rate_qtd}}}}
runtime: {{state_path: "{state}", debounce: 50ms, batch_size: 2000, log_level: error}}
"""


def _broker() -> Any:
    spec = importlib.util.spec_from_file_location(
        "broker", ROOT / "scripts" / "kafka" / "broker.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.KafkaBroker()


def events(n: int) -> list[dict[str, Any]]:
    rng = random.Random(5)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    return [
        {
            "source": "crm",
            "object": "deal",
            "id": str(i),
            "op": "upsert",
            "version": 1,
            "fields": {
                "owner_id": f"u{rng.randrange(20)}",
                "status": rng.choice(["won", "lost", "open"]),
                "type": "new",
                "amount": str(rng.randrange(100, 9000)),
                "created_at": now,
                "closed_at": now,
            },
        }
        for i in range(n)
    ]


def last_line(path: Path) -> str:
    try:
        return path.read_text().splitlines()[-1]
    except (FileNotFoundError, IndexError):
        return ""


def wait_for_total(path: Path, want: int, timeout: float = 600) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        for line in reversed(path.read_text().splitlines() if path.exists() else []):
            row = json.loads(line)
            if row["field"] == "won_mtd":
                if row["value"] == want:
                    return time.perf_counter() - started
                break
        time.sleep(0.05)
    raise TimeoutError("the sink never reached the expected value")


async def publish(broker: str, topic: str, items: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=5)
    await producer.start()
    try:
        for e in items:
            await producer.send(topic, json.dumps(e).encode(), key=f"crm/deal/{e['id']}".encode())
        await producer.flush()
    finally:
        await producer.stop()


def worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "crm_pulse.cli", "worker", "--config", str(config)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args(argv)
    data = events(args.events)
    want = sum(int(e["fields"]["amount"]) for e in data if e["fields"]["status"] == "won")
    result: dict[str, Any] = {"events": args.events}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # embedded runtime on the same events
        (tmp / "in.jsonl").write_text("".join(json.dumps(e) + "\n" for e in data))
        emb = tmp / "embedded.yaml"
        emb.write_text(
            EMBEDDED.format(input=tmp / "in.jsonl", out=tmp / "emb.jsonl", state=tmp / "s.sqlite")
        )
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "crm_pulse.cli", "run", "--config", str(emb)],
            stderr=subprocess.DEVNULL,
        )
        elapsed = wait_for_total(tmp / "emb.jsonl", want)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        result["embedded_events_per_s"] = round(args.events / elapsed)
        broker = _broker().start()
        try:
            app = f"bench-{os.getpid()}"
            config = tmp / "faust.yaml"
            out = tmp / "faust.jsonl"
            config.write_text(FAUST.format(out=out, app=app, broker=broker.bootstrap))
            w = worker(config, tmp / "worker.log")
            warm = {
                "source": "crm",
                "object": "deal",
                "id": "warm-up",
                "op": "upsert",
                "version": 1,
                "fields": {**data[0]["fields"], "status": "won", "amount": "1"},
            }
            asyncio.run(publish(broker.bootstrap, f"{app}-events", [warm]))
            wait_for_total(out, 1, timeout=180)  # the worker is up and has partitions
            started = time.perf_counter()
            asyncio.run(publish(broker.bootstrap, f"{app}-events", data))
            wait_for_total(out, want + 1)
            result["faust_one_worker_events_per_s"] = round(
                args.events / (time.perf_counter() - started)
            )
            result["faust_over_embedded"] = round(
                result["faust_one_worker_events_per_s"] / result["embedded_events_per_s"], 3
            )
            want += 1
            # latency publish -> written, one change at a time
            latencies = []
            total = want
            for k in range(30):
                amount = 1000 + k
                e = {
                    "source": "crm",
                    "object": "deal",
                    "id": f"lat{k}",
                    "op": "upsert",
                    "version": 1,
                    "fields": {**data[0]["fields"], "status": "won", "amount": str(amount)},
                }
                total += amount
                t0 = time.perf_counter()
                asyncio.run(publish(broker.bootstrap, f"{app}-events", [e]))
                wait_for_total(out, total, timeout=60)
                latencies.append(time.perf_counter() - t0)
            latencies.sort()
            result["latency_p50_ms"] = round(latencies[len(latencies) // 2] * 1000)
            result["latency_p99_ms"] = round(latencies[-1] * 1000)
            # recovery: kill -9, start a new worker, time until it writes again
            w.send_signal(signal.SIGKILL)
            w.wait()
            t0 = time.perf_counter()
            w = worker(config, tmp / "worker2.log")
            e = {
                "source": "crm",
                "object": "deal",
                "id": "after-crash",
                "op": "upsert",
                "version": 1,
                "fields": {**data[0]["fields"], "status": "won", "amount": "7"},
            }
            asyncio.run(publish(broker.bootstrap, f"{app}-events", [e]))
            wait_for_total(out, total + 7, timeout=300)
            result["recovery_after_sigkill_s"] = round(time.perf_counter() - t0, 1)
            w.send_signal(signal.SIGTERM)
            w.wait(60)
        finally:
            broker.stop()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
