"""``crm-pulse replay`` against a DuckDB full recompute of the same metrics, same history.

    .venv/bin/python benchmarks/duckdb_replay.py                  # 10^5 deals (about a minute)
    .venv/bin/python benchmarks/duckdb_replay.py --deals 1000000  # the issue's 10^6 scale

DuckDB (a dev dependency, used here only) reads the JSONL history, keeps each deal's newest
version (a delete with the newest version removes it) and computes won revenue, deals won, win
rate and average deal size per month and quarter, company-wide and per owner. The engine replays
the same file with a deployment that enables exactly those metrics (what ``crm-pulse replay``
does, the same call: parse, fold each record's events into its final state, add its
contributions, report). Both are timed from the file on disk to the rows in
memory; every value DuckDB computes is checked against the engine's report, so the two do the
same work. The figure is the ratio of the two times in one run.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import duckdb

from crm_pulse.config import load_config_text
from crm_pulse.metrics.replay import collector_paused, replay_file

METRICS = ("won_revenue", "deals_won", "win_rate", "avg_deal_size")
DEPLOY = """
timezone: UTC
connectors: []
metrics:
  enable: [won_revenue, deals_won, win_rate, avg_deal_size]
"""
START = datetime(2024, 1, 1, tzinfo=UTC)
AS_OF = datetime(2026, 6, 1, tzinfo=UTC)  # after every close date: replay counts them all


def history(deals: int, path: Path) -> int:
    """Deals created over two years; about half change once more (status, amount), 2 % are
    deleted: about 1.5 events per deal, like the issue's 10^6-deal history."""
    rng = random.Random(7)
    n = 0
    with path.open("w") as f:
        for i in range(deals):
            created = START + timedelta(minutes=rng.randrange(60 * 24 * 700))
            versions = 2 if rng.random() < 0.5 else 1
            for version in range(1, versions + 1):
                status = rng.choice(["open", "won", "won", "lost"])
                closed = created + timedelta(days=rng.randrange(1, 60))
                fields = {
                    "owner_id": f"u{rng.randrange(200)}",
                    "status": status,
                    "type": "new",
                    "amount": str(rng.randrange(100, 90_000)),
                    "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "closed_at": None
                    if status == "open"
                    else closed.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
                event = {"source": "crm", "object": "deal", "id": str(i), "op": "upsert"}
                f.write(json.dumps({**event, "version": version, "fields": fields}) + "\n")
                n += 1
            if rng.random() < 0.02:
                event = {"source": "crm", "object": "deal", "id": str(i), "op": "delete"}
                f.write(json.dumps({**event, "version": versions + 1}) + "\n")
                n += 1
    return n


SQL = """
WITH events AS (
    SELECT id, version, op, fields FROM read_json(?, format = 'newline_delimited',
        columns = {source: 'VARCHAR', object: 'VARCHAR', id: 'VARCHAR', op: 'VARCHAR',
                   version: 'BIGINT',
                   fields: 'STRUCT(owner_id VARCHAR, status VARCHAR, amount VARCHAR,
                                   closed_at TIMESTAMPTZ)'})
),
latest AS (
    SELECT * FROM events QUALIFY row_number() OVER (PARTITION BY id ORDER BY version DESC) = 1
),
closed AS (
    SELECT fields.owner_id AS owner, fields.status AS status,
           CAST(fields.amount AS BIGINT) AS amount,
           date_trunc('month', fields.closed_at AT TIME ZONE 'UTC') AS month,
           date_trunc('quarter', fields.closed_at AT TIME ZONE 'UTC') AS quarter
    FROM latest WHERE op = 'upsert' AND fields.status IN ('won', 'lost')
),
per_window AS (
    SELECT 'month' AS kind, month AS start, owner, status, amount FROM closed
    UNION ALL
    SELECT 'quarter', quarter, owner, status, amount FROM closed
)
SELECT kind, start, owner,
       sum(amount) FILTER (WHERE status = 'won') AS won_amount,
       count(*) FILTER (WHERE status = 'won') AS deals_won,
       count(*) AS deals_closed
FROM per_window
GROUP BY GROUPING SETS ((kind, start), (kind, start, owner))
"""


def label(kind: str, start: datetime) -> str:
    if kind == "month":
        return f"{start.year}-{start.month:02d}"
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}"


def duckdb_values(path: Path) -> dict[tuple[str, str, str], Fraction | None]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rows = con.execute(SQL, [str(path)]).fetchall()
    out: dict[tuple[str, str, str], Fraction | None] = {}
    for kind, start, owner, won_amount, won, closed in rows:
        window = label(kind, start)
        group = owner or ""
        won_amount = Fraction(won_amount or 0)
        out[("won_revenue", window, group)] = won_amount
        out[("deals_won", window, group)] = Fraction(won)
        out[("win_rate", window, group)] = Fraction(won, closed) if closed else None
        out[("avg_deal_size", window, group)] = won_amount / won if won else None
    return out


def engine_values(path: Path) -> dict[tuple[str, str, str], Fraction | None]:
    """What ``crm-pulse replay`` does (the same function): stream-parse, apply, report."""
    deployment = load_config_text(DEPLOY, resolve_secrets=False)
    as_of = int(AS_OF.timestamp() * 1000)
    engine = replay_file(
        deployment.catalog(), path, as_of, windows=deployment.window_specs(), records=False
    )
    with collector_paused():
        return {
            (r.metric, r.window.label, str(r.group[1]) if r.group else ""): r.value
            for r in engine.iter_report(as_of, keep_null=True)
            if r.metric in METRICS
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.jsonl"
        events = history(args.deals, path)
        t0, c0 = time.perf_counter(), time.process_time()
        want = duckdb_values(path)
        duck, duck_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        got = engine_values(path)
        replay, replay_cpu = time.perf_counter() - t0, time.process_time() - c0
    # a report has no row for a group whose metric has no data at all (an owner with lost
    # deals only has no won revenue row); DuckDB's 0 there is the same answer
    wrong = [(k, v, got.get(k)) for k, v in want.items() if got.get(k, v if not v else None) != v]
    assert not wrong, f"the engine and DuckDB disagree: {wrong[:5]}"
    result: dict[str, Any] = {
        "deals": args.deals,
        "events": events,
        "values_compared": len(want),
        "duckdb_s": round(duck, 2),
        "replay_s": round(replay, 2),
        "replay_over_duckdb": round(replay / duck, 1),
        "replay_events_per_s": round(events / replay),
        # CPU seconds (all of DuckDB's threads): the same comparison on a machine whose cores
        # other processes share, where wall times measure the neighbours as much as the work
        "duckdb_cpu_s": round(duck_cpu, 2),
        "replay_cpu_s": round(replay_cpu, 2),
        "replay_over_duckdb_cpu": round(replay_cpu / duck_cpu, 1),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
