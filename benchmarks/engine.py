"""Engine benchmark: throughput against a floor loop, per-event cost vs state size, memory.

    .venv/bin/python benchmarks/engine.py            # 10^4, 10^5 and 10^6 records (minutes)
    .venv/bin/python benchmarks/engine.py --quick    # 10^4 and 10^5 only

Every figure that matters is a ratio of two measurements taken in the same run, because the
machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

from crm_pulse.metrics import Engine, Event, build_catalog, parse_time, reference_report

START = datetime(2025, 1, 1, tzinfo=UTC)
REFERENCE_RECORDS = 1_000


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def record_event(rng: random.Random, i: int, version: int) -> str:
    """One canonical event for record i (object chosen by i), as a JSONL line."""
    t = START + timedelta(minutes=rng.randrange(0, 60 * 24 * 700))
    kind = i % 10
    if kind < 4:
        status = rng.choice(["open", "open", "won", "lost"])
        obj, fields = (
            "deal",
            {
                "account_id": f"a{rng.randrange(5000)}",
                "owner_id": f"u{rng.randrange(40)}",
                "pipeline": "default",
                "stage": rng.choice(["s1", "s2", "s3", "s4"]),
                "stage_entered_at": _iso(t),
                "status": status,
                "type": rng.choice(["new", "upsell", "renewal", "other"]),
                "amount": f"{rng.randrange(100, 50000)}.{rng.randrange(100):02d}",
                "created_at": _iso(t - timedelta(days=20)),
                "closed_at": _iso(t) if status != "open" else None,
            },
        )
    elif kind < 7:
        obj, fields = (
            "activity",
            {
                "owner_id": f"u{rng.randrange(40)}",
                "account_id": f"a{rng.randrange(5000)}",
                "type": rng.choice(["call", "email", "meeting", "task", "note"]),
                "occurred_at": _iso(t),
            },
        )
    elif kind == 7:
        obj, fields = (
            "contact",
            {
                "account_id": f"a{rng.randrange(5000)}",
                "email": f"p{rng.randrange(10**6)}@x.com",
                "lifecycle": rng.choice(["lead", "customer", "other"]),
                "created_at": _iso(t),
                "converted_at": None,
            },
        )
    elif kind == 8:
        obj, fields = (
            "ticket",
            {
                "owner_id": f"u{rng.randrange(40)}",
                "account_id": f"a{rng.randrange(5000)}",
                "status": "closed",
                "created_at": _iso(t - timedelta(hours=30)),
                "closed_at": _iso(t),
            },
        )
    else:
        obj, fields = (
            "survey_response",
            {
                "account_id": f"a{rng.randrange(5000)}",
                "survey": "nps",
                "score": rng.randrange(11),
                "submitted_at": _iso(t),
            },
        )
    return json.dumps(
        {
            "source": "bench",
            "object": obj,
            "id": str(i),
            "op": "upsert",
            "version": version,
            "fields": fields,
        }
    )


def floor_loop(lines: list[str]) -> float:
    counts: dict[str, int] = {}
    t0 = time.perf_counter()
    for line in lines:
        obj = json.loads(line)["object"]
        counts[obj] = counts.get(obj, 0) + 1
    return time.perf_counter() - t0


def engine_loop(engine: Engine, lines: list[str]) -> float:
    t0 = time.perf_counter()
    for line in lines:
        engine.apply(Event.model_validate_json(line))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = [10**4, 10**5] if args.quick else [10**4, 10**5, 10**6]
    catalog = build_catalog()
    rng = random.Random(7)
    batch = 20_000
    results: dict[str, float] = {}
    per_event: dict[int, float] = {}
    memory: dict[int, float] = {}
    for n in sizes:
        creates = [record_event(rng, i, 1) for i in range(n)]
        updates = [record_event(rng, rng.randrange(n), 2 + k) for k in range(batch)]
        gc.collect()
        tracemalloc.start()
        engine = Engine(catalog)
        engine_loop(engine, creates)
        current, _peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        memory[n] = current / n
        per_event[n] = engine_loop(engine, updates) / batch * 1e6
        if n == sizes[0]:
            fresh = Engine(catalog)
            t_engine = engine_loop(fresh, creates)
            t_floor = floor_loop(creates)
            results["floor_us"] = t_floor / n * 1e6
            results["engine_us"] = t_engine / n * 1e6
            # the reference rescans every record per (metric, group, window): O(records^2) here
            sample = creates[:REFERENCE_RECORDS]
            fresh = Engine(catalog)
            t_engine = engine_loop(fresh, sample)
            events = [Event.model_validate_json(x) for x in sample]
            as_of = parse_time("2026-12-01T00:00:00Z")
            t0 = time.perf_counter()
            fresh.report(as_of)
            results["engine_report_s"] = time.perf_counter() - t0 + t_engine
            t0 = time.perf_counter()
            reference_report(catalog, events, as_of, fresh.specs)
            results["reference_s"] = time.perf_counter() - t0
        del engine
    small, large = sizes[0], sizes[-1]
    print("| figure | value |\n|---|---|")
    print(f"| floor loop (json.loads + dict increment) | {results['floor_us']:.2f} µs/event |")
    print(
        f"| engine, full catalog, parse + apply (new records) | {results['engine_us']:.2f} µs/event |"
    )
    print(
        f"| engine throughput / floor throughput | 1/{results['engine_us'] / results['floor_us']:.1f} |"
    )
    for n in sizes:
        print(f"| update cost at {n:,} records | {per_event[n]:.2f} µs/event |")
    print(f"| cost at {large:,} / cost at {small:,} | {per_event[large] / per_event[small]:.2f}x |")
    for n in sizes:
        print(f"| engine state memory at {n:,} records | {memory[n]:.0f} B/record |")
    print(
        f"| reference recompute / engine (apply + report), {REFERENCE_RECORDS:,} records | "
        f"{results['reference_s'] / results['engine_report_s']:.1f}x |"
    )
    print(json.dumps({"results": results, "per_event_us": per_event, "bytes_per_record": memory}))


if __name__ == "__main__":
    main()
