"""What a Faust worker's time tick costs, per kind of rule, on a large state (issue 17, item 5).

    .venv/bin/python benchmarks/faust_ticks.py                 # 10^5 deals, 20,000 owners
    .venv/bin/python benchmarks/faust_ticks.py --before        # the tick as it was: every group
    .venv/bin/python benchmarks/faust_ticks.py --deals 20000 --owners 4000   # quicker

The deployment and history of ``benchmarks/ticks.py`` (10 rules, one per kind of measure and
window), through one Faust worker's two phases without Kafka: the app's own record phase and
aggregates stage (:class:`FaustPipeline`, its tables in memory, 4 deltas partitions, all this
worker's), fed in batches of 2,000 messages per partition as the agents take them, then the
app's time tick (:class:`Timers`) at the times ``ticks.py`` uses: a first tick (a start: every
group once), +10 s, +60 s, +10 min, +1 h, the last 10 % of the history applied in batches
(CPU per event of the aggregates stage, which now feeds the planner's index), one more tick,
and the tick that crosses into April 1st (day and month rules roll over). Reported per tick:
groups evaluated (the planner's count) and CPU seconds of the whole tick.

``--before``: a planner without the index by time and an engine without its kept groups with
data (what the app built before session 5); the stage then tells the planner nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from ticks import NOW, RULES, deployment_text, history

from crm_pulse.config.loader import load_config_text
from crm_pulse.metrics import Engine
from crm_pulse.streams.faust import FaustPipeline
from crm_pulse.streams.faust.bulk import FaustChangelog
from crm_pulse.streams.faust.order import Anchor, Message
from crm_pulse.streams.faust.phases import AggregatePhase, RecordPhase
from crm_pulse.streams.faust.stores import GroupedStore, by_record
from crm_pulse.streams.writeback import Planner

PARTITIONS = 4
BATCH = 2000

RUNTIME = f"""
runtime:
  kind: faust
  faust: {{app_id: ticks-bench, broker: "kafka://127.0.0.1:1", partitions: {PARTITIONS}}}
"""


class MemoryTable:
    """A Faust table's surface as :class:`GroupedStore` uses it, in memory."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def keys(self) -> list[str]:
        return list(self.data)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def send_changelog(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Consumer:
    def __init__(self, topic: str) -> None:
        self.topic = topic

    def assignment(self) -> set[Any]:
        from faust.types import TP

        return {TP(self.topic, p) for p in range(PARTITIONS)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--owners", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--before", action="store_true", help="every group at every tick")
    args = parser.parse_args()
    deployment = load_config_text(
        deployment_text() + RUNTIME, file="ticks.yaml", resolve_secrets=False
    )
    p = FaustPipeline(deployment, sinks={"crm": object()})
    store = p.aggregate_store
    store.table = MemoryTable()
    store.changelog = FaustChangelog(store.table)
    if args.before:
        p.planner = p.aggregates.planner = Planner(deployment.writeback, p.catalog)
        p.aggregates.phase = AggregatePhase(
            Engine(p.catalog, store, deployment.window_specs()), store, p.planner.wanted
        )
    records = GroupedStore(MemoryTable(), by_record)
    phase1 = RecordPhase(Engine(p.catalog, records, deployment.window_specs()), records)
    clock = [NOW]
    p.aggregates.clock = lambda: clock[0] / 1000
    published = [0]

    class Values:
        async def send_all(self, messages: Any) -> None:
            published[0] += len(messages)

    p.aggregates.values = Values()
    p.app.consumer = Consumer(p.deltas.get_topic_name())
    p.app.consumer_generation_id = 1
    p.timers.settled = lambda generation: True  # type: ignore[method-assign]
    events = history(args.deals, args.owners, args.days)
    every = list(range(PARTITIONS))
    partitioner = DefaultPartitioner()
    offsets = [0] * PARTITIONS  # the next offset of each deltas partition
    read = [0]  # the next offset of the (one) events partition

    async def apply(batch: list[Any]) -> tuple[int, float]:
        """Phase 1 then phase 2 for ``batch``; the aggregates stage's CPU seconds."""
        deltas: list[list[tuple[bytes, bytes]]] = [[] for _ in every]
        for i, event in enumerate(batch):
            for key, body in phase1.apply(event.model_dump_json().encode(), 0, read[0] + i):
                deltas[partitioner(key, every, every)].append((key, body))
        read[0] += len(batch)
        cpu = 0.0
        messages = 0
        for q, part in enumerate(deltas):
            for start in range(0, len(part), BATCH):
                chunk = [
                    Message("deltas", q, offsets[q] + o, k, v)
                    for o, (k, v) in enumerate(part[start : start + BATCH])
                ]
                offsets[q] += len(chunk)
                c0 = time.process_time()
                await p.aggregates.apply([(Anchor("deltas", q), chunk)])
                cpu += time.process_time() - c0
                messages += len(chunk)
        return messages, cpu

    async def tick(label: str, at: int) -> dict[str, Any]:
        clock[0] = at
        before = p.planner.evaluations
        per_rule = dict(p.planner.evaluated)
        sent = published[0]
        c0 = time.process_time()
        await p.timers.tick()
        cpu = time.process_time() - c0
        row = {
            "tick": label,
            "groups": p.planner.evaluations - before,
            "cpu_s": round(cpu, 4),
            "values_published": published[0] - sent,
            "per_rule": {
                f"{kind}: {metric} {window}": p.planner.evaluated.get(i, 0) - per_rule.get(i, 0)
                for i, (metric, window, kind) in enumerate(RULES)
            },
        }
        print(f"{label}: {row['groups']} groups evaluated, {cpu:.3f} CPU s", flush=True)
        return row

    async def run() -> list[dict[str, Any]]:
        split = len(events) * 9 // 10
        t0 = time.process_time()
        messages, cpu = 0, 0.0
        for start in range(0, split, 5000):
            n, c = await apply(events[start : min(start + 5000, split)])
            messages, cpu = messages + n, cpu + c
        print(
            f"state: {args.deals} deals, {args.owners} owners, {split} events in "
            f"{time.process_time() - t0:.1f} CPU s ({'before' if args.before else 'after'})"
        )
        rows = [
            await tick(label, at)
            for label, at in (
                ("first", NOW),
                ("+10 s", NOW + 10_000),
                ("+60 s", NOW + 60_000),
                ("+10 min", NOW + 600_000),
                ("+1 h", NOW + 3_600_000),
            )
        ]
        clock[0] = NOW + 3_600_000 + 60_000
        messages, cpu = 0, 0.0
        for start in range(split, len(events), 500):
            n, c = await apply(events[start : start + 500])
            messages, cpu = messages + n, cpu + c
        print(
            f"last {len(events) - split} events: {messages} delta messages, aggregates stage "
            f"{cpu:.2f} CPU s ({1e6 * cpu / max(1, len(events) - split):.1f} µs per event)"
        )
        rows.append({"batches": len(events) - split, "aggregates_cpu_s": round(cpu, 3)})
        rows.append(await tick("+1 h 2 min (after the batches)", NOW + 3_720_000))
        rows.append(await tick("rollover (April 1st)", NOW + 2 * 3_600_000 + 1))
        return rows

    rows = asyncio.run(run())
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
