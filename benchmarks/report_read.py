"""``crm-pulse report`` at a large state: 5 metrics against the full catalog, same state file.

    .venv/bin/python benchmarks/report_read.py                  # 10^5 deals, 5,000 accounts
    .venv/bin/python benchmarks/report_read.py --deals 1000000  # the issue's 10^6 scale

Builds the state file the embedded runtime would hold after applying the history (the
consumer's engine over the SQLite store, flushed in one transaction), every built-in metric
enabled, then runs ``crm-pulse report`` (jsonl, streamed to a file) in a child process: with
``--metric`` for 5 metrics, with no filter, and for one value (``--metric won_revenue --window
2026-Q1 --group company``: the fixed cost of a report, process start included). Reported per run: rows, seconds, rows/s and
the child's peak RSS; the figure is the ratio of the two times in one run, against the ratio of
their row counts (a read path proportional to what is read has the two about equal; one that
scans every record has the 5-metric report cost nearly what the full one costs).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crm_pulse.config import load_config
from crm_pulse.metrics import Engine, Event
from crm_pulse.metrics.replay import collector_paused
from crm_pulse.streams.embedded.database import Database
from crm_pulse.streams.embedded.state import SQLiteStore

FIVE = ("won_revenue", "deals_won", "win_rate", "avg_deal_size", "open_pipeline_value")
START = datetime(2024, 1, 1, tzinfo=UTC)
AS_OF = "2026-06-01"


def events(deals: int) -> list[Event]:
    """Deals over two years with owners and accounts (one account per 20 deals)."""
    rng = random.Random(11)
    out = []
    for i in range(deals):
        created = START + timedelta(minutes=rng.randrange(60 * 24 * 700))
        status = rng.choice(["open", "won", "won", "lost"])
        closed = created + timedelta(days=rng.randrange(1, 60))
        fields: dict[str, Any] = {
            "owner_id": f"u{rng.randrange(200)}",
            "account_id": f"a{rng.randrange(max(1, deals // 20))}",
            "status": status,
            "stage": rng.choice(["qualify", "propose", "negotiate"]),
            "type": rng.choice(["new", "upsell", "renewal"]),
            "amount": str(rng.randrange(100, 90_000)),
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "closed_at": None if status == "open" else closed.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        out.append(
            Event.model_validate(
                {"source": "crm", "object": "deal", "id": str(i), "op": "upsert", "version": 1}
                | {"fields": fields}
            )
        )
    return out


def build_state(config: Path, deals: int) -> int:
    deployment = load_config(str(config), resolve_secrets=False)
    store = SQLiteStore()
    engine = Engine(deployment.catalog(), store, deployment.window_specs())
    now = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp() * 1000)
    engine.advance(now)
    with collector_paused():
        engine.apply_all(events(deals))
    db = Database(deployment.runtime.state_path)
    try:

        def flush() -> int:
            def run(conn: Any) -> int:
                n = store.flush(conn)
                Database.set_meta(conn, "horizon", str(now))
                return n

            return db.transaction(run)()

        return db.call(flush)
    finally:
        db.close()


def timed_report(config: Path, out: Path, *args: str) -> dict[str, Any]:
    code = (
        "import time\n"
        "from crm_pulse.cli import main\n"
        "t = time.perf_counter()\n"
        f"with open({str(out)!r}, 'w') as f:\n"
        f"    rc = main(['report', '--config', {str(config)!r}, '--as-of', {AS_OF!r}, "
        f"*{list(args)!r}], out=f)\n"
        "hwm = [x for x in open('/proc/self/status') if x.startswith('VmHWM')][0].split()[1]\n"
        "print(rc, time.perf_counter() - t, hwm)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rc, seconds, rss_kb = done.stdout.split()
    assert rc == "0", done.stderr
    with out.open() as f:
        rows = sum(1 for _ in f)
    return {
        "rows": rows,
        "seconds": round(float(seconds), 2),
        "rows_per_s": round(rows / float(seconds)),
        "peak_rss_mb": round(int(rss_kb) / 1024),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "deploy.yaml"
        config.write_text(
            f"timezone: UTC\nconnectors: []\nruntime: {{state_path: {tmp}/s.sqlite}}\n"
        )
        t0 = time.perf_counter()
        keys = build_state(config, args.deals)
        built = time.perf_counter() - t0
        size = (Path(tmp) / "s.sqlite").stat().st_size
        five = timed_report(
            config, Path(tmp) / "five.jsonl", *(a for m in FIVE for a in ("--metric", m))
        )
        full = timed_report(config, Path(tmp) / "full.jsonl")
        one = timed_report(
            config,
            Path(tmp) / "one.jsonl",
            *("--metric", "won_revenue", "--window", "2026-Q1", "--group", "company"),
        )
    result = {
        "deals": args.deals,
        "state_entries": keys,
        "state_file_mb": round(size / 2**20),
        "build_s": round(built, 1),
        "five_metrics": five,
        "full_catalog": full,
        "one_value": one,
        "time_ratio_five_over_full": round(five["seconds"] / full["seconds"], 3),
        "row_ratio_five_over_full": round(five["rows"] / full["rows"], 3),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
