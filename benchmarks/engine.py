"""Engine benchmark: throughput against a floor loop, per-event cost vs state size, memory.

    .venv/bin/python benchmarks/engine.py            # 10^4, 10^5 and 10^6 records (minutes)
    .venv/bin/python benchmarks/engine.py --quick    # 10^4 and 10^5 only
    .venv/bin/python benchmarks/engine.py --sizes 10000 --repeat 5   # while iterating

Every figure that matters is a ratio of two measurements taken in the same run, because the
machines are shared and noisy. Throughput figures are the best of ``--repeat`` alternating
passes (floor, engine, floor, engine, ...), so one hiccup of the machine does not decide them.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import crm_pulse.metrics
from crm_pulse.metrics import Engine, Event, build_catalog, parse_time, reference_report

# what the runtimes parse an event's JSON text with (``Event.model_validate_json`` before
# session 3's decoder, which gives the same events and errors)
parse_event = getattr(crm_pulse.metrics, "decode_event", Event.model_validate_json)

START = datetime(2025, 1, 1, tzinfo=UTC)
REFERENCE_RECORDS = 1_000


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


AS_OF = parse_time("2026-12-01T00:00:00Z")


def _engine(catalog: Any) -> Engine:
    """An engine told the time first, as replay does (records dated after it are pending)."""
    engine = Engine(catalog)
    if hasattr(engine, "advance"):  # absent in commits before the open window was closed
        engine.advance(AS_OF)
    return engine


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


def parse_loop(lines: list[str]) -> float:
    """Parsing and typing alone (:data:`parse_event`): the part of the engine's figure that is
    not the engine."""
    t0 = time.perf_counter()
    for line in lines:
        parse_event(line)
    return time.perf_counter() - t0


def engine_loop(engine: Engine, lines: list[str]) -> float:
    t0 = time.perf_counter()
    for line in lines:
        engine.apply(parse_event(line))
    return time.perf_counter() - t0


def phases_loop(records: Engine, groups: Engine, lines: list[str]) -> float:
    """The two-phase path of a partitioned runtime: parse, deltas, JSON wire form, apply.

    An event's deltas travel as one JSON message (what a runtime with one phase-2 partition
    sends; with more, one message per partition the event touches).
    """
    from crm_pulse.metrics import Delta

    dumps, loads, from_wire = json.dumps, json.loads, Delta.from_wire
    t0 = time.perf_counter()
    for line in lines:
        deltas = records.deltas(parse_event(line))
        if deltas:
            message = dumps([d.to_wire() for d in deltas])
            groups.apply_deltas([from_wire(w) for w in loads(message)])
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10^4 and 10^5 records only")
    parser.add_argument("--sizes", help="comma-separated record counts, e.g. 10000")
    parser.add_argument("--repeat", type=int, default=3, help="passes per throughput figure")
    args = parser.parse_args()
    sizes = [10**4, 10**5] if args.quick else [10**4, 10**5, 10**6]
    if args.sizes:
        sizes = [int(x) for x in args.sizes.split(",")]
    catalog = build_catalog()
    rng = random.Random(7)
    batch = 20_000
    results: dict[str, float] = {}
    per_event: dict[int, float] = {}
    memory: dict[int, float] = {}
    for n in sizes:
        creates = [record_event(rng, i, 1) for i in range(n)]
        updates = [record_event(rng, rng.randrange(n), 2 + k) for k in range(batch)]
        if n == sizes[0]:
            t_floor = t_engine = t_phases = t_parse = float("inf")
            for _ in range(args.repeat):
                gc.collect()
                t_floor = min(t_floor, floor_loop(creates))
                t_parse = min(t_parse, parse_loop(creates))
                t_engine = min(t_engine, engine_loop(_engine(catalog), creates))
                if hasattr(Engine, "deltas"):  # absent in commits before the two phases
                    t_phases = min(
                        t_phases, phases_loop(_engine(catalog), _engine(catalog), creates)
                    )
            results["floor_us"] = t_floor / n * 1e6
            results["engine_us"] = t_engine / n * 1e6
            results["parse_us"] = t_parse / n * 1e6
            results["phases_us"] = t_phases / n * 1e6
            # the reference rescans every record per (metric, group, window): O(records^2) here
            sample = creates[:REFERENCE_RECORDS]
            fresh = _engine(catalog)
            t_engine = engine_loop(fresh, sample)
            events = [Event.model_validate_json(x) for x in sample]
            as_of = parse_time("2026-12-01T00:00:00Z")
            t0 = time.perf_counter()
            fresh.report(as_of)
            results["engine_report_s"] = time.perf_counter() - t0 + t_engine
            t0 = time.perf_counter()
            reference_report(catalog, events, as_of, fresh.specs)
            results["reference_s"] = time.perf_counter() - t0
        # update cost: a full collection first, or a cyclic-GC pass over all the records' state
        # (seconds at 10^6 records) lands in the timed window or not, by chance
        gc.collect()
        engine = _engine(catalog)
        engine_loop(engine, creates)
        gc.collect()
        per_event[n] = engine_loop(engine, updates) / batch * 1e6
        del engine
        # memory on a separate build, after the timings: right after tracemalloc stops, the
        # process runs several times slower for a while (measured: the first 5,000 updates at
        # 10^6 records took 10x as long)
        gc.collect()
        tracemalloc.start()
        engine = _engine(catalog)
        engine_loop(engine, creates)
        current, _peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        memory[n] = current / n
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
    print(
        f"| of which parsing and typing (`{parse_event.__name__}`) | {results['parse_us']:.2f} "
        f"µs/event = {results['parse_us'] / results['floor_us']:.1f} floors |"
    )
    apply_us = results["engine_us"] - results["parse_us"]
    print(
        f"| of which the engine (apply) | {apply_us:.2f} µs/event = "
        f"{apply_us / results['floor_us']:.1f} floors |"
    )
    if results["phases_us"] != float("inf"):
        print(
            "| two phases (deltas, JSON wire form, apply_deltas) / floor throughput | "
            f"1/{results['phases_us'] / results['floor_us']:.1f} |"
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
