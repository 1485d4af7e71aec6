"""Values that time moves are written only for the groups the caller owns."""

from __future__ import annotations

import time

from crm_pulse.config.loader import load_config_text
from crm_pulse.metrics import Engine
from crm_pulse.metrics.events import Event
from crm_pulse.streams.writeback import Planner

DEPLOY = """
connectors:
  - file: {name: crm, path: out.jsonl}
writeback:
  - {metric: won_revenue, window: "rolling:30d", group: owner_id,
     target: {connector: crm, object: User, field: won_30d}}
  - {metric: won_revenue, window: "rolling:30d", group: {},
     target: {connector: crm, object: Company, record: c1, field: won_30d}}
"""


def _deal(i: int, owner: str, closed_ms: int) -> Event:
    closed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(closed_ms / 1000))
    return Event.model_validate(
        {
            "source": "crm",
            "object": "deal",
            "id": str(i),
            "op": "upsert",
            "version": 1,
            "fields": {
                "owner_id": owner,
                "status": "won",
                "amount": "100",
                "created_at": closed,
                "closed_at": closed,
            },
        }
    )


def test_due_by_time_skips_groups_another_worker_owns() -> None:
    deployment = load_config_text(DEPLOY, file="deploy.yaml", resolve_secrets=False)
    engine = Engine(deployment.catalog(), windows=deployment.window_specs())
    now = int(time.time() * 1000)
    engine.apply_all([_deal(1, "u1", now - 86_400_000), _deal(2, "u2", now - 86_400_000)])
    planner = Planner(deployment.writeback, engine.catalog)

    every = planner.due_by_time(engine, now)
    assert sorted((w.object, w.record_id) for w in every) == [
        ("Company", "c1"),
        ("User", "u1"),
        ("User", "u2"),
    ]
    mine = planner.due_by_time(engine, now, owns=lambda group: group == ("owner_id", "u1"))
    assert [(w.object, w.record_id, w.value) for w in mine] == [("User", "u1", 100)]
    planner.forget_windows()
    assert planner.due_by_time(engine, now, owns=lambda group: False) == []
