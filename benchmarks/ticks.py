"""What a tick and a calendar rollover cost, per kind of rule, on a large state (issue 17, items 5, 8).

    .venv/bin/python benchmarks/ticks.py                    # 10^5 deals, 20,000 owners
    .venv/bin/python benchmarks/ticks.py --deals 20000 --owners 4000   # quicker

Builds the engine the embedded runtime keeps (``track_groups``, every rule's measures) from a
history of deals over 400 days (20,000 owners, accounts that become customers and churn, spend
per category and month), then drives one planner per write-back rule as the embedded consumer
drives its planner (``by_time``): a first tick (every group of every rule once: what a start
costs), ticks 10 s, 60 s, 10 min and 1 h later (nothing but time moved), then the tick that crosses
midnight at the end of a month (day and month rules roll over). Reported per rule and tick:
groups evaluated and CPU seconds (``time.process_time``). The rules: ``deals_won`` and
``win_rate`` over rolling 30 days per owner (the two rules of session 3's figure), and one per
other kind of measure and window: window conditions, ``active`` counts, ``among``, period records,
percentiles over rolling windows; days and months per owner. It runs with whichever
``crm_pulse`` it imports: put an older tree first on ``PYTHONPATH`` to measure it.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import UTC, datetime
from typing import Any

from crm_pulse.config.loader import load_config_text
from crm_pulse.metrics import Engine, Event
from crm_pulse.streams.writeback import Planner

DAY = 86_400_000
NOW = int(datetime(2026, 3, 31, 22, 0, tzinfo=UTC).timestamp() * 1000)  # 2 h before April

RULES = [
    ("deals_won", "rolling:30d", "timed count"),
    ("win_rate", "rolling:30d", "timed ratio"),
    ("median_deal_size", "rolling:30d", "percentile"),
    ("owner_churned", "rolling:30d", "window condition"),
    ("owner_customers", "rolling:30d", "active"),
    ("owner_upsell_rate", "rolling:30d", "among / active"),
    ("spend_by_category", "rolling:90d", "period (2 groups)"),
    ("deals_won", "day", "calendar day"),
    ("won_revenue", "month", "calendar month"),
    ("owner_customers", "month", "active, month"),
]
DEPLOY = """
connectors:
  - file: {name: crm, path: out.jsonl}
metrics:
  measures:
    acct_churned: {object: account, where: {customer_since: {lt: window.start}}, at: churned_at}
    acct_at_end:
      object: account
      active: {start: customer_since, end: churned_at, when: window_end}
    owner_upsells:
      object: deal
      where: {status: won, type: upsell, account_id: {set: true}}
      at: closed_at
      distinct: account_id
      among: acct_at_end
    cat_spend: {object: spend, period: {match: within}, sum: amount}
  metrics:
    owner_churned: {value: acct_churned, groups: [owner_id], category: customer perception}
    owner_customers: {value: acct_at_end, groups: [owner_id], category: customer perception}
    owner_upsell_rate: {value: owner_upsells / acct_at_end, groups: [owner_id],
                        category: business performance}
    spend_by_category: {value: cat_spend, groups: [category], category: business performance}
writeback:
"""


def deployment_text() -> str:
    lines = []
    for i, (metric, window, _kind) in enumerate(RULES):
        group = "category" if metric == "spend_by_category" else "owner_id"
        lines.append(
            f'  - {{metric: {metric}, window: "{window}", group: {group},'
            f" target: {{connector: crm, object: User, field: f{i}}}}}\n"
        )
    return DEPLOY + "".join(lines)


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def history(deals: int, owners: int, days: int) -> list[Event]:
    rng = random.Random(7)
    accounts = max(1, owners)
    out: list[Event] = []

    def add(obj: str, i: int, fields: dict[str, Any]) -> None:
        out.append(
            Event.model_validate(
                {"source": "crm", "object": obj, "id": f"{obj}{i}", "op": "upsert",
                 "version": 1, "fields": fields}
            )
        )  # fmt: skip

    for i in range(deals):
        closed = NOW - rng.randrange(days * DAY)
        status = rng.choice(["won", "won", "lost", "open"])
        add("deal", i, {
            "owner_id": f"u{rng.randrange(owners)}", "account_id": f"a{rng.randrange(accounts)}",
            "status": status, "type": rng.choice(["new", "upsell"]),
            "amount": str(rng.randrange(100, 90_000)), "created_at": _iso(closed - 20 * DAY),
            "closed_at": None if status == "open" else _iso(closed)})  # fmt: skip
    for i in range(accounts):
        since = NOW - rng.randrange(days * DAY)
        fields = {"owner_id": f"u{rng.randrange(owners)}", "customer_since": _iso(since)}
        if rng.random() < 0.2:
            fields["churned_at"] = _iso(since + rng.randrange(1, days) * DAY)
        add("account", i, fields)
    for i, month in enumerate(range(2025 * 12, 2026 * 12 + 3)):
        for j, cat in enumerate(("acquisition", "retention")):
            start = f"{month // 12}-{month % 12 + 1:02d}-01"
            add("spend", 2 * i + j, {
                "category": cat, "period": "month", "period_start": start, "amount": "1000"})  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--owners", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=400)
    args = parser.parse_args()
    deployment = load_config_text(deployment_text(), file="ticks.yaml", resolve_secrets=False)
    catalog = deployment.catalog()
    t0 = time.process_time()
    engine = Engine(catalog, windows=deployment.window_specs(), track_groups=True)
    engine.advance(NOW)
    for event in history(args.deals, args.owners, args.days):
        engine.apply(event)
    planners = [Planner([rule], catalog, by_time=True) for rule in deployment.writeback]
    wanted: dict[str, set[tuple[str, ...]]] = {}
    for p in planners:
        for metric, fields in p.wanted.items():
            wanted.setdefault(metric, set()).update(fields)
    engine.forget_changes()  # what a start sees: nothing moved yet, the index not built
    print(f"state: {args.deals} deals, {args.owners} owners, built in "
          f"{time.process_time() - t0:.1f} CPU s")  # fmt: skip
    ticks = [("first", NOW), ("+10 s", NOW + 10_000), ("+60 s", NOW + 60_000),
             ("+10 min", NOW + 600_000), ("+1 h", NOW + 3_600_000),
             ("rollover (April 1st)", NOW + 2 * 3_600_000 + 1)]  # fmt: skip
    rows = []
    for label, at in ticks:
        engine.advance(at)
        touched = engine.touched({i for p in planners for i in p.time_measures})
        row: dict[str, Any] = {"tick": label}
        for (metric, window, kind), p in zip(RULES, planners, strict=True):
            p.touched(touched)
            before = p.evaluations
            c0 = time.process_time()
            writes = p.due_by_time(engine, at)
            row[f"{kind}: {metric} {window}"] = (
                p.evaluations - before,
                round(time.process_time() - c0, 4),
                len(writes),
            )
        engine.changes(at, metrics=wanted)
        rows.append(row)
        total_groups = sum(v[0] for k, v in row.items() if k != "tick")
        total_cpu = sum(v[1] for k, v in row.items() if k != "tick")
        print(f"{label}: {total_groups} groups evaluated, {total_cpu:.3f} CPU s")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
