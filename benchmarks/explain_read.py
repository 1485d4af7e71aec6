"""``/explain`` and ``crm-pulse explain --config``: cost against the records held.

    .venv/bin/python benchmarks/explain_read.py                          # 10^4 and 10^5 deals
    .venv/bin/python benchmarks/explain_read.py --deals 10000 100000 1000000

For each size, builds the state file the embedded runtime holds after applying the history
(``benchmarks/report_read.py``'s deals: 200 owners, one account per 20 deals; every built-in
metric; the consumer's store with its group index, flushed in one transaction), then times
explanations of three values:

* ``account``: ``won_revenue`` of one account over the two years (about 20 deals at any size:
  a read proportional to what it reads stays flat as the state grows);
* ``owner``: ``win_rate`` of one owner (deals / 200: grows with the state by construction);
* ``company``: ``won_revenue`` of one month, company-wide (every deal is a candidate).

Each is timed three ways in this process, best of ``--repeat``: the runtime's drill-down
(``/explain``: the loaded store and its index in memory, ``explain_store``), the same over every
record of the store (what ``/explain`` did before the index), and ``crm-pulse explain --config``'s
read of the file (the ``record_groups`` rows, then the group's records; before: load the whole
state). Then ``crm-pulse explain --config`` once in a child process for the account (process
start and configuration included). Wall and CPU seconds (``time.process_time``) are reported;
the figure is the ratio of a size's time to the smallest size's, for each path.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from report_read import events  # the same deals as the report benchmark

from crm_pulse.config import load_config
from crm_pulse.metrics import Engine
from crm_pulse.metrics.explain import explain
from crm_pulse.metrics.fingerprint import fingerprint
from crm_pulse.metrics.groupindex import GroupIndex
from crm_pulse.metrics.replay import collector_paused
from crm_pulse.streams.embedded.database import Database
from crm_pulse.streams.embedded.groups import write_index
from crm_pulse.streams.embedded.rebuild import META_KEY
from crm_pulse.streams.embedded.state import SQLiteStore
from crm_pulse.streams.explain import _group_or_every, explain_store, record_states

AS_OF = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp() * 1000)
QUESTIONS = {
    "account": ("won_revenue", "2025", ("account_id", "a7")),
    "owner": ("win_rate", "2025", ("owner_id", "u7")),
    "company": ("won_revenue", "2025-03", ()),
}


def build(config: Path, deals: int) -> tuple[Any, SQLiteStore, int]:
    deployment = load_config(str(config), resolve_secrets=False)
    catalog = deployment.catalog()
    store = SQLiteStore(GroupIndex(catalog))
    engine = Engine(catalog, store, deployment.window_specs())
    engine.advance(AS_OF)
    with collector_paused():
        engine.apply_all(events(deals))
    db = Database(deployment.runtime.state_path)
    try:

        def flush() -> int:
            def run(conn: Any) -> int:
                n = store.flush(conn)
                assert store.index is not None
                write_index(conn, store.index)
                Database.set_meta(conn, "horizon", str(AS_OF))
                definitions = fingerprint(catalog, deployment.window_specs())
                Database.set_meta(conn, META_KEY, json.dumps(definitions))
                return n

            return db.transaction(run)()

        return deployment, store, db.call(flush)
    finally:
        db.close()


def best(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    wall, cpu = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return {"wall_ms": round(min(wall) * 1000, 2), "cpu_ms": round(min(cpu) * 1000, 2)}


def one_size(deals: int, repeat: int, slow_repeat: int, questions: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "deploy.yaml"
        config.write_text(
            f"timezone: UTC\nconnectors: []\nruntime: {{state_path: {tmp}/s.sqlite}}\n"
        )
        t0 = time.perf_counter()
        deployment, store, entries = build(config, deals)
        built = time.perf_counter() - t0
        catalog = deployment.catalog()
        assert store.index is not None
        index = store.index
        out: dict[str, Any] = {
            "deals": deals,
            "state_entries": entries,
            "state_file_mb": round((Path(tmp) / "s.sqlite").stat().st_size / 2**20),
            "build_s": round(built, 1),
        }
        db = Database(deployment.runtime.state_path, create=False, check=False)
        try:
            for name in questions:
                metric, window, group = QUESTIONS[name]

                def indexed(m: str = metric, w: str = window, g: Any = group) -> Any:
                    return explain_store(catalog, store, index, m, w, g, AS_OF)

                def scanned(m: str = metric, w: str = window, g: Any = group) -> Any:
                    states = list(record_states(catalog, SQLiteStore.items(store)))
                    return explain(catalog, states, m, w, g, AS_OF, states=True)

                def from_file(m: str = metric, w: str = window, g: Any = group) -> Any:
                    compiled = catalog.metrics[m]
                    items = db.call(lambda: _group_or_every(db, catalog, compiled, g))
                    states = list(record_states(catalog, items))
                    return explain(catalog, states, m, w, g, AS_OF, states=True)

                def file_whole(m: str = metric, w: str = window, g: Any = group) -> Any:
                    whole = SQLiteStore()
                    db.call(lambda: whole.load(db.conn))
                    states = list(record_states(catalog, whole.items()))
                    return explain(catalog, states, m, w, g, AS_OF, states=True)

                got = indexed()
                same = scanned()
                assert got.contributions == same.contributions and got.value == same.value
                assert from_file().contributions == got.contributions
                out[name] = {
                    "contributions": len(got.contributions),
                    "runtime_indexed": best(indexed, repeat),
                    "runtime_scan_before": best(scanned, slow_repeat),
                    "file_indexed": best(from_file, repeat),
                    "file_whole_before": best(file_whole, 1) if name == "account" else None,
                }
        finally:
            db.close()
        metric, window, group = QUESTIONS["account"]
        code = (
            "import time, io\n"
            "from crm_pulse.cli import main\n"
            "t = time.perf_counter()\n"
            f"rc = main(['explain', '--config', {str(config)!r}, '--metric', {metric!r}, "
            f"'--window', {window!r}, '--group', '{group[0]}={group[1]}', '--as-of', "
            "'2026-06-01', '--format', 'jsonl'], out=io.StringIO())\n"
            "print(rc, time.perf_counter() - t, time.process_time())\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        rc, seconds, cpu = done.stdout.split()
        assert rc == "0", done.stderr
        out["cli_account"] = {"wall_s": round(float(seconds), 3), "process_cpu_s": float(cpu)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deals", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--slow-repeat", type=int, default=2, help="repeats of the scans")
    parser.add_argument("--questions", nargs="+", choices=list(QUESTIONS), default=list(QUESTIONS))
    args = parser.parse_args(argv)
    sizes = [one_size(n, args.repeat, args.slow_repeat, args.questions) for n in args.deals]
    first = sizes[0]
    ratios: dict[str, Any] = {}
    for size in sizes[1:]:
        key = f"{size['deals']}/{first['deals']}"
        ratios[key] = {
            name: {
                path: round(size[name][path]["cpu_ms"] / max(first[name][path]["cpu_ms"], 0.01), 2)
                for path in ("runtime_indexed", "runtime_scan_before", "file_indexed")
            }
            for name in args.questions
        }
    print(
        json.dumps(
            {"sizes": sizes, "cpu_ratio_to_smallest": ratios, "load_average": os.getloadavg()},
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
