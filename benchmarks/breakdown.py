"""Where the microseconds of an event go, step by step, in both runtimes (no broker, no HTTP).

    .venv/bin/python benchmarks/breakdown.py                 # 20,000 events, 2 write-back rules
    .venv/bin/python benchmarks/breakdown.py --events 50000 --batch 2000

Runs each runtime's per-batch steps in this process, on the events of
``benchmarks/faust_runtime.py`` (deals: won, lost, open; 20 owners) and its two write-back rules,
and times every step separately, as microseconds per event and as a share of the runtime's
total. The floor loop (``json.loads`` + a dict increment) and the engine's own replay rate are
measured in the same run, so the figures can be compared with ``benchmarks/engine.py``.

Embedded runtime, per batch (``streams/embedded/consumer.py``; the poller's side first):
  append (event -> canonical JSON, INSERT into the log), read (SELECT the batch), parse,
  apply (engine, both phases), changes (values that moved), plan (write-back rules),
  outbox (INSERTs), state (pickle + INSERT of changed keys), commit (fsync).

Faust runtime, per batch (``streams/faust/``; what the three agents do besides Kafka I/O):
  parse (``parse_line``: the file sources' fast decoder), deltas (phase 1, and their wire form:
  the group once per message), encode (JSON delta messages, one per group and batch), records
  table (pickle of the changed record entries), decode (JSON + deltas), apply (phase 2),
  changes + plan, aggregates table (pickle of the changed group entries), values (JSON of
  each field value). With ``--former``: pydantic parsing, six-item deltas (``to_wire``,
  ``from_wire``), every metric, a mark per record.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faust_runtime import EMBEDDED, events

from crm_pulse.config import load_config
from crm_pulse.metrics import Engine, Event
from crm_pulse.metrics.deltas import Delta, group_key
from crm_pulse.metrics.jsonl import parse_line
from crm_pulse.metrics.state import MemoryStore
from crm_pulse.streams.embedded.database import Database
from crm_pulse.streams.embedded.log import append_events, event_json
from crm_pulse.streams.embedded.state import SQLiteStore
from crm_pulse.streams.faust.phases import Encoder
from crm_pulse.streams.faust.phases import decode as decode_deltas
from crm_pulse.streams.writeback import Planner, SQLiteOutbox


class Timer:
    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.spent[step] += time.perf_counter() - t0

    def table(self, n: int, title: str) -> dict[str, float]:
        total = sum(self.spent.values())
        print(f"\n{title}: {total / n * 1e6:.1f} µs/event")
        for step, spent in self.spent.items():
            print(f"  {step:<18} {spent / n * 1e6:7.2f} µs  {spent / total * 100:5.1f} %")
        return {step: round(spent / n * 1e6, 2) for step, spent in self.spent.items()}


def floor(lines: list[str]) -> float:
    counts: dict[str, int] = {}
    t0 = time.perf_counter()
    for line in lines:
        obj = json.loads(line)["object"]
        counts[obj] = counts.get(obj, 0) + 1
    return (time.perf_counter() - t0) / len(lines) * 1e6


def embedded(
    deployment: Any, lines: list[str], batch: int, tmp: Path, former: bool = False
) -> dict[str, float]:
    db = Database(tmp / ("former.sqlite" if former else "state.sqlite"))
    conn = db.conn  # this thread only: the Database's own thread is idle
    store = SQLiteStore()
    engine = Engine(deployment.catalog(), store, deployment.window_specs())
    planner = Planner(deployment.writeback, engine.catalog)
    t = Timer()
    parsed = [Event.model_validate_json(line) for line in lines]
    position = 0
    as_of = int(time.time() * 1000)

    def tx(step: str, fn: Callable[[], Any]) -> Any:
        conn.execute("BEGIN IMMEDIATE")
        out = fn()
        with t(step):
            conn.execute("COMMIT")
        return out

    for start in range(0, len(lines), batch):
        chunk = parsed[start : start + batch]

        def append(chunk: list[Event] = chunk) -> None:
            with t("append"):
                append_events(conn, "crm", chunk, as_of)

        tx("commit (append)", append)

        def step() -> None:
            nonlocal position
            with t("read"):
                rows = conn.execute(
                    "SELECT position, body FROM events WHERE position > ? ORDER BY position "
                    "LIMIT ?",
                    (position, batch),
                ).fetchall()
            with t("parse"):
                evs = [Event.model_validate_json(body) for _, body in rows]
            with t("apply"):
                for e in evs:
                    engine.apply(e)
            with t("changes"):
                changed = engine.changes(as_of, metrics=None if former else planner.wanted)
            with t("plan"):
                writes = planner.plan(changed, as_of, engine)
            with t("outbox"):
                SQLiteOutbox.put(conn, writes, as_of / 1000, 1.0)
            with t("state"):
                store.flush(conn)
            position = rows[-1][0]

        tx("commit (batch)", step)
    how = " (former: every metric's changes)" if former else ""
    out = t.table(len(lines), f"embedded runtime, batches of {batch}{how}")
    db.close()
    return out


def faust(deployment: Any, lines: list[str], batch: int, former: bool = False) -> dict[str, float]:
    from crm_pulse.streams.embedded.state import dumps_state
    from crm_pulse.streams.faust.phases import pack

    catalog = deployment.catalog()
    windows = deployment.window_specs()
    records = Engine(catalog, MemoryStore(), windows)
    groups_store = MemoryStore()
    groups = Engine(catalog, groups_store, windows)
    planner = Planner(deployment.writeback, catalog)
    t = Timer()
    as_of = int(time.time() * 1000)
    seen: dict[tuple[Any, int], int] = {}
    offset = 0
    encoder = Encoder()
    for start in range(0, len(lines), batch):
        chunk = lines[start : start + batch]
        with t("parse"):
            if former:
                evs = [Event.model_validate_json(line) for line in chunk]
            else:  # as RecordPhase.entries parses
                evs = [parse_line(line, 1) for line in chunk]
        entries = []
        touched_records = []
        keys: dict[Any, bytes] = {}
        with t("deltas (phase 1)"):
            for e in evs:
                offset += 1
                deltas = records.deltas(e)
                if not deltas:
                    continue
                per: dict[Any, list[Any]] = {}
                if former:
                    for d in deltas:
                        per.setdefault(d.group, []).append(d.to_wire())
                else:
                    per = encoder.by_group(deltas)
                for g, items in per.items():
                    key = keys.get(g)
                    if key is None:
                        key = keys[g] = group_key(g).encode()
                    wire = "deltas" if former else "d"
                    entries.append((key, {"p": 0, "o": offset, wire: items}))
                touched_records.append(e.key)
        with t("encode"):
            messages = pack(entries)
        with t("records table"):
            for key in touched_records:
                dumps_state({("r", *key): records.store.get(("r", *key))})
        with t("decode"):
            decoded = []
            for _key, body in messages:
                if former:  # Delta.from_wire for every delta
                    for entry in json.loads(body)["entries"]:
                        decoded.append(
                            (
                                entry["p"],
                                entry["o"],
                                [Delta.from_wire(d) for d in entry["deltas"]],
                            )
                        )
                else:  # as the aggregates agent decodes a message
                    decoded.extend(decode_deltas(body))
        moved: set[Any] = set()
        with t("apply (phase 2)"):
            for partition, seq, deltas in decoded:
                mark = (deltas[0].group, seq if former else partition)  # former: per record
                if seen.get(mark, 0) >= seq:
                    continue
                groups.apply_deltas(deltas)
                seen[mark] = seq
                moved.add(deltas[0].group)
        with t("changes + plan"):
            wanted = None if former else planner.wanted
            changed = groups.changes(as_of, only_changed=False, metrics=wanted)
            writes = planner.plan(changed, as_of, groups)
        # GroupedStore: one table entry per group holding all its keys (buckets, last values,
        # applied marks), pickled whole when the group moved (gathered here untimed)
        entries_of: dict[Any, dict[Any, Any]] = {g: {} for g in moved}
        for k, v in groups_store.data.items():
            if k[2] in entries_of:
                entries_of[k[2]][k] = v
        for (g, source), number in seen.items():
            if g in entries_of:
                entries_of[g][("s", 0, g, source)] = number
        with t("aggregates table"):
            for entry in entries_of.values():
                dumps_state(entry)
        with t("values"):
            for w in writes:
                json.dumps(
                    {
                        "connector": w.connector,
                        "object": w.object,
                        "record_id": w.record_id,
                        "field": w.field,
                        "value": w.value,
                    }
                ).encode()
    how = " (former: every metric, a mark per record)" if former else ""
    return t.table(len(lines), f"Faust runtime without Kafka, batches of {batch}{how}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--former",
        action="store_true",
        help="also the former designs: changes of every metric, phase-2 marks per record",
    )
    args = parser.parse_args(argv)
    lines = [json.dumps(e) for e in events(args.events)]
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        config = tmp / "deploy.yaml"
        config.write_text(
            EMBEDDED.format(input=tmp / "in.jsonl", out=tmp / "out.jsonl", state=tmp / "s.sqlite")
        )
        deployment = load_config(config, resolve_secrets=False)
        f = min(floor(lines) for _ in range(3))
        engine = Engine(deployment.catalog(), windows=deployment.window_specs())
        t0 = time.perf_counter()
        engine.apply_all(Event.model_validate_json(line) for line in lines)
        replay = (time.perf_counter() - t0) / len(lines) * 1e6
        print(f"floor loop {f:.2f} µs/event; engine replay (parse + apply) {replay:.2f} µs/event")
        e = embedded(deployment, lines, args.batch, tmp)
        fa = faust(deployment, lines, args.batch)
        if args.former:
            embedded(deployment, lines, args.batch, tmp, former=True)
            faust(deployment, lines, args.batch, former=True)
    pickle_note = "state values pickled (streams/embedded/state.py)"
    print(
        json.dumps(
            {
                "floor_us": round(f, 2),
                "replay_us": round(replay, 2),
                "embedded": e,
                "faust": fa,
                "note": pickle_note,
                "event_json_example_bytes": len(event_json(Event.model_validate_json(lines[0]))),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
