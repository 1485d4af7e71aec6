"""Sustained ingest through the signed HTTP ingress on loopback (used by benchmarks/runtime.py).

A real ``crm-pulse run`` process serves the ingress; this process is the load: ``connections``
concurrent aiohttp clients each POST signed batches of ``batch`` canonical events as fast as the
server acknowledges them (2xx = committed to SQLite). Reports acknowledged events/s, p50/p99
acknowledgement latency, and how long the runtime then needs to apply the backlog.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from crm_pulse.connectors.events import sign

SECRET = "bench-ingress-secret-0123456789"
DEPLOY = """
timezone: UTC
connectors:
  - events: {{secret: "${{INGRESS_SECRET}}"}}
  - file: {{name: out, path: "{out}"}}
writeback:
  - {{metric: won_revenue, window: quarter, group: owner_id, target: {{connector: out, object: User, field: won_qtd}}}}
runtime:
  state_path: "{state}"
  listen: "127.0.0.1:{port}"
  batch_size: 2000
  debounce: 2s
  log_level: error
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _deal(rng: random.Random, i: int) -> dict[str, Any]:
    status = rng.choice(["open", "won", "lost"])
    return {
        "source": "crm",
        "object": "deal",
        "id": str(i),
        "op": "upsert",
        "version": 1,
        "fields": {
            "owner_id": f"u{rng.randrange(40)}",
            "account_id": f"a{rng.randrange(2000)}",
            "status": status,
            "type": "new",
            "amount": str(rng.randrange(100, 9000)),
            "created_at": "2026-10-01T00:00:00Z",
            "closed_at": None if status == "open" else "2026-11-02T00:00:00Z",
        },
    }


async def _load(base: str, seconds: float, connections: int, batch: int) -> tuple[int, list[float]]:
    rng = random.Random(3)
    counter = [0]
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            events = [_deal(rng, counter[0] + k) for k in range(batch)]
            counter[0] += batch
            body = json.dumps(events).encode()
            started = time.perf_counter()
            async with session.post(base + "/events", data=body, headers=sign(SECRET, body)) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"ingress answered {r.status}")
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(connections)))
    return len(latencies) * batch, latencies


def ingest(engine_rate: float, *, quick: bool) -> dict[str, float]:
    seconds, connections, batch = (5.0, 8, 50) if quick else (15.0, 16, 100)
    with tempfile.TemporaryDirectory() as tmp:
        port = _port()
        config = Path(tmp) / "deploy.yaml"
        config.write_text(
            DEPLOY.format(out=Path(tmp) / "out.jsonl", state=Path(tmp) / "s.sqlite", port=port)
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "crm_pulse.cli", "run", "--config", str(config)],
            env={**os.environ, "INGRESS_SECRET": SECRET},
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    time.sleep(0.1)
            started = time.perf_counter()
            acked, latencies = asyncio.run(_load(base, seconds, connections, batch))
            elapsed = time.perf_counter() - started
            # how long until the engine has applied everything acknowledged
            db = sqlite3.connect(Path(tmp) / "s.sqlite")
            while True:
                row = db.execute("SELECT value FROM meta WHERE name='consumed_events'").fetchone()
                if row and int(row[0]) >= acked:
                    break
                time.sleep(0.1)
            drained = time.perf_counter() - started
            db.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    latencies.sort()
    rate = acked / elapsed
    result = {
        "events_acknowledged": acked,
        "ack_events_per_s": round(rate),
        "ack_p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "ack_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "applied_events_per_s": round(acked / drained),
        "engine_replay_events_per_s": round(engine_rate),
        "ack_rate_over_engine_rate": round(rate / engine_rate, 3),
    }
    print("ingest through the signed HTTP ingress:", json.dumps(result, indent=2))
    return result
