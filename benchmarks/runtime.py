"""Embedded runtime benchmark: write-back frugality and (with the HTTP ingress) ingest rate.

    .venv/bin/python benchmarks/runtime.py            # all sections
    .venv/bin/python benchmarks/runtime.py --quick    # smaller sizes

Figures are ratios measured in one run (the machines are shared and noisy):

* write-back: API calls per changed field value under a burst of updates (target <= 1/100),
  and API calls when nothing changed (target 0);
* ingest: events/s acknowledged through the signed HTTP ingress on loopback, with p50/p99
  acknowledgement latency, against the engine's own replay throughput in the same run
  (target >= 1/3).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crm_pulse.config import load_config_text
from crm_pulse.connectors.protocols import Connector, FieldWrite, WriteResult
from crm_pulse.metrics import Engine, Event
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime

DEPLOY = """
timezone: UTC
connectors:
  - file: {{name: crm, path: "{out}"}}
writeback:
  - {{metric: won_revenue, window: quarter, group: owner_id, target: {{connector: crm, object: User, field: won_qtd}}}}
  - {{metric: win_rate, window: quarter, group: owner_id, target: {{connector: crm, object: User, field: win_rate_qtd}}}}
  - {{metric: won_revenue, window: month, group: {{}}, target: {{connector: crm, object: Company, record: "c1", field: won_mtd}}}}
  - {{metric: deals_won, window: rolling:30d, group: {{}}, target: {{connector: crm, object: Company, record: "c1", field: won_30d}}}}
runtime:
  state_path: "{state}"
  debounce: 2s
  batch_size: 500
"""


class CountingSink:
    max_batch = 100
    rounds_in_flight = 1

    def __init__(self) -> None:
        self.calls = 0
        self.values = 0

    async def write(self, writes: Sequence[FieldWrite]) -> list[WriteResult]:
        self.calls += 1
        self.values += len(writes)
        return [WriteResult(w, ok=True) for w in writes]


class Bench(Connector):
    kind = "bench"

    def __init__(self, sink: CountingSink) -> None:
        super().__init__("crm", {})
        self.sink = sink


def deal(rng: random.Random, i: int, version: int, owners: int) -> Event:
    status = rng.choice(["open", "won", "lost"])
    return Event.model_validate(
        {
            "source": "crm",
            "object": "deal",
            "id": str(i),
            "op": "upsert",
            "version": version,
            "fields": {
                "owner_id": f"u{i % owners}",
                "status": status,
                "type": "new",
                "amount": str(rng.randrange(100, 10_000)),
                "created_at": "2026-11-01T00:00:00Z",
                "closed_at": None if status == "open" else "2026-11-10T00:00:00Z",
            },
        }
    )


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def writeback(records: int, rounds: int, owners: int) -> dict[str, Any]:
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        text = DEPLOY.format(out=Path(tmp) / "w.jsonl", state=Path(tmp) / "s.sqlite")
        deployment = load_config_text(text, base_dir=tmp)
        sink = CountingSink()
        clock = Clock(time.mktime((2026, 11, 20, 12, 0, 0, 0, 0, 0)))
        rt = EmbeddedRuntime(deployment, connectors={"crm": Bench(sink)}, clock=clock)
        for r in range(rounds):  # a burst: every deal changes `rounds` times within the debounce
            await rt.ingest("crm", [deal(rng, i, r + 1, owners) for i in range(records)])
            await rt.consume_all()
            clock.now += 0.01
        await rt.tick()
        changed = rt.planned_writes
        metric_changes = rt.changed_values
        clock.now += 3
        calls = await rt.flush_writes()
        # the same states again, newer versions: nothing changes, nothing is sent
        calls_before = sink.calls
        rng2 = random.Random(1)
        replay = [[deal(rng2, i, r + 1, owners) for i in range(records)] for r in range(rounds)]
        last = [e.model_copy(update={"version": e.version + 1000}) for e in replay[-1]]
        await rt.ingest("crm", last)
        await rt.consume_all()
        clock.now += 60
        await rt.tick()
        await rt.flush_writes()
        await rt.close()
        return {
            "updates": records * rounds,
            "metric_values_changed": metric_changes,
            "changed_field_values": changed,
            "api_calls": calls,
            "values_written": sink.values,
            "calls_per_changed_value": calls / changed if changed else None,
            "calls_when_nothing_changed": sink.calls - calls_before,
        }


def engine_throughput(n: int) -> float:
    """Events/s of parse + apply with the deployment's catalog (the replay path)."""
    rng = random.Random(2)
    deployment = load_config_text(DEPLOY.format(out="/dev/null", state=":memory:"))
    lines = [json.dumps(deal(rng, i, 1, 40).model_dump(mode="json")) for i in range(n)]
    engine = Engine(deployment.catalog(), windows=deployment.window_specs())
    t0 = time.perf_counter()
    for line in lines:
        engine.apply(Event.model_validate_json(line))
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    records, rounds = (2_000, 5) if args.quick else (10_000, 10)
    result = asyncio.run(writeback(records, rounds, owners=100))
    print("write-back burst:", json.dumps(result, indent=2))
    ratio = result["calls_per_changed_value"]
    print(f"  API calls per changed field value: 1/{1 / ratio:,.0f}" if ratio else "  no change")
    print(f"  API calls when nothing changed: {result['calls_when_nothing_changed']}")
    sys.path.insert(0, str(Path(__file__).parent))
    from ingest_bench import ingest

    rate = engine_throughput(20_000 if args.quick else 100_000)
    print(f"engine replay throughput: {rate:,.0f} events/s")
    ingest(rate, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
