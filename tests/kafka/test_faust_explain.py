"""``crm-pulse explain --config FILE`` on a running Faust deployment: the records come from the
``records`` table's changelog topic in Kafka, and the rows equal ``explain EVENTS.jsonl`` for
the same events (issue 18, point 8)."""

from __future__ import annotations

import asyncio
import io
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crm_pulse.cli import main

from .test_faust_runtime import Deployment, expected, history


def _explain(*args: str) -> tuple[int, list[dict[str, object]], str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["explain", *args, "--format", "jsonl"], out, err)
    return code, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def _adoption(rng: random.Random, now: datetime) -> list[dict[str, object]]:
    """Users u0..u3, and changes of records by them (some by crm-pulse itself: no user, which
    keeps the change known before), in versions out of order."""
    out: list[dict[str, object]] = [
        {
            "source": "crm",
            "object": "user",
            "id": f"u{i}",
            "op": "upsert",
            "version": 1,
            "fields": {"created_at": "2025-01-01T00:00:00Z"},
        }
        for i in range(4)
    ]
    for n in range(60):
        by = rng.choice(["u0", "u1", "u2", "u3", "stranger", None])
        at = (now - timedelta(hours=rng.uniform(1, 40))).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append(
            {
                "source": "crm",
                "object": rng.choice(["account", "ticket"]),
                "id": str(n % 12),
                "op": "upsert",
                "version": rng.randint(1, 6),
                "fields": {"modified_by": by, "modified_at": at if by else None},
            }
        )
    rng.shuffle(out)
    return out


def test_explain_reads_a_running_faust_deployment_s_records(kafka: str, tmp_path: Path) -> None:
    d = Deployment(tmp_path, kafka)
    events = history(random.Random(7), 400)
    events += _adoption(random.Random(8), datetime.now(UTC))
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    now = datetime.now(UTC)
    quarter = f"{now.year}-Q{(now.month - 1) // 3 + 1}"
    as_of = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    questions = [
        ("won_revenue", quarter, []),
        ("win_rate", quarter, ["--group", "owner_id=u1"]),
        ("median_deal_size", quarter, ["--group", "owner_id=u2"]),
        ("open_deals", "current", []),
        ("active_users", quarter, []),  # activities and the last change a user made
    ]
    try:
        d.start_worker()
        asyncio.run(d.publish(events))
        d.wait_for(expected(d.config, events))
        for metric, window, group in questions:
            common = ["--metric", metric, "--window", window, *group, "--as-of", as_of]
            code, want, err = _explain(str(path), "--config", str(d.config), *common)
            assert code == 0, err
            assert len(want) > 2, want  # records and the value row
            deadline = time.monotonic() + 60
            while True:  # the changelog holds every record once the worker committed them
                code, got, err = _explain("--config", str(d.config), *common)
                if (code == 0 and got == want) or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert code == 0, err
            assert got == want, (metric, window, group)
        # a deployment whose app never ran: which topic is missing, not a traceback
        other = tmp_path / "other.yaml"
        other.write_text(d.config.read_text().replace(d.app, d.app + "-never"))
        code, _, err = _explain(
            "--config", str(other), "--metric", "won_revenue", "--window", quarter
        )
        assert code != 0 and "no topic" in err and "records-changelog" in err, err
    finally:
        d.stop()
    assert all(p.returncode == 0 for p in d.workers), d.logs()
