"""Write examples/events.jsonl: a small, reproducible company's year of canonical events.

    python examples/make_events.py > examples/events.jsonl

Eight reps, 120 accounts, deals moving through a pipeline (some won, lost, upsold, renewed),
tickets, activities, NPS and CSAT responses, quarterly quotas and acquisition spend, with
updates, a few deletes and the duplicates and re-orderings that real CRMs deliver.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

START = datetime(2026, 1, 1, tzinfo=UTC)
STAGES = ["qualify", "demo", "proposal", "negotiation"]


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def main() -> None:
    rng = random.Random(2026)
    out: list[dict[str, object]] = []
    reps = [f"u{i}" for i in range(1, 9)]
    version = 1_767_225_600_000

    def emit(obj: str, rid: str, fields: dict[str, object] | None, at: datetime) -> None:
        nonlocal version
        version += 1
        ev: dict[str, object] = {
            "source": "hubspot",
            "object": obj,
            "id": rid,
            "op": "upsert" if fields is not None else "delete",
            "version": int(at.timestamp() * 1000) * 1000 + version % 1000,
        }
        if fields is not None:
            ev["fields"] = fields
        out.append(ev)

    for a in range(120):
        since = START + timedelta(days=rng.randint(-200, 300))
        churned = since + timedelta(days=rng.randint(60, 400)) if rng.random() < 0.2 else None
        fields = {
            "owner_id": rng.choice(reps),
            "domain": f"acme{a % 110}.com" if a % 17 else f"www.acme{a % 110}.com",
            "customer_since": iso(since),
            "churned_at": iso(churned) if churned else None,
            "created_at": iso(since - timedelta(days=30)),
        }
        emit("account", str(a), fields, since)
    for d in range(600):
        owner = rng.choice(reps)
        account = str(rng.randrange(120))
        created = START + timedelta(days=rng.randint(0, 320), hours=rng.randint(8, 18))
        kind = rng.choices(["new", "upsell", "renewal", "other"], [5, 2, 2, 1])[0]
        amount = f"{rng.randint(20, 400) * 50}.00"
        t = created
        fields: dict[str, object] = {
            "account_id": account,
            "owner_id": owner,
            "pipeline": "default",
            "stage": STAGES[0],
            "stage_entered_at": iso(t),
            "status": "open",
            "type": kind,
            "amount": amount,
            "created_at": iso(created),
            "closed_at": None,
        }
        emit("deal", f"D{d}", dict(fields), t)
        for stage in STAGES[1 : rng.randint(1, 4)]:
            t += timedelta(days=rng.randint(2, 20))
            fields.update(stage=stage, stage_entered_at=iso(t))
            emit("deal", f"D{d}", dict(fields), t)
        if rng.random() < 0.8:
            t += timedelta(days=rng.randint(1, 15))
            won = rng.random() < 0.4
            fields.update(
                stage="closedwon" if won else "closedlost",
                stage_entered_at=iso(t),
                status="won" if won else "lost",
                closed_at=iso(t),
            )
            emit("deal", f"D{d}", dict(fields), t)
        if rng.random() < 0.02:
            emit("deal", f"D{d}", None, t + timedelta(days=1))
    for c in range(400):
        created = START + timedelta(days=rng.randint(0, 330))
        converted = created + timedelta(days=rng.randint(1, 60)) if rng.random() < 0.3 else None
        email = f"person{c % 380}@acme{c % 110}.com"
        emit(
            "contact",
            f"C{c}",
            {
                "account_id": str(c % 120),
                "owner_id": rng.choice(reps),
                "email": email.upper() if c % 50 == 0 else email,
                "lifecycle": rng.choice(["lead", "customer", "other"]),
                "created_at": iso(created),
                "converted_at": iso(converted) if converted else None,
            },
            created,
        )
    for k in range(500):
        created = START + timedelta(days=rng.randint(0, 330), hours=rng.randint(0, 23))
        fields = {
            "account_id": str(rng.randrange(120)),
            "owner_id": rng.choice(reps),
            "status": "open",
            "created_at": iso(created),
            "closed_at": None,
        }
        emit("ticket", f"T{k}", dict(fields), created)
        if rng.random() < 0.85:
            closed = created + timedelta(hours=rng.randint(1, 120))
            fields.update(status="closed", closed_at=iso(closed))
            emit("ticket", f"T{k}", dict(fields), closed)
    for i in range(3000):
        at = START + timedelta(days=rng.randint(0, 330), hours=rng.randint(8, 18))
        emit(
            "activity",
            f"A{i}",
            {
                "owner_id": rng.choice(reps),
                "account_id": str(rng.randrange(120)),
                "type": rng.choice(["call", "email", "meeting", "task", "note", "call"]),
                "occurred_at": iso(at),
            },
            at,
        )
    for s in range(500):
        at = START + timedelta(days=rng.randint(0, 330))
        nps = s % 3 != 0
        emit(
            "survey_response",
            f"S{s}",
            {
                "account_id": str(rng.randrange(120)),
                "contact_id": f"C{rng.randrange(400)}",
                "survey": "nps" if nps else "csat",
                "score": rng.choice([10, 10, 9, 9, 8, 7, 6, 5, 3, 0]) if nps else rng.randint(1, 5),
                "submitted_at": iso(at),
            },
            at,
        )
    for q, month in enumerate((1, 4, 7, 10)):
        for rep in reps:
            emit(
                "quota",
                f"Q{q}-{rep}",
                {
                    "owner_id": rep,
                    "period": "quarter",
                    "period_start": f"2026-{month:02d}-01",
                    "amount": "150000",
                },
                START,
            )
        emit(
            "spend",
            f"SP{q}",
            {
                "category": "acquisition",
                "period": "quarter",
                "period_start": f"2026-{month:02d}-01",
                "amount": f"{rng.randint(40, 90) * 1000}",
            },
            START,
        )
    # real deliveries repeat and reorder
    out.extend(rng.sample(out, len(out) // 20))
    rng.shuffle(out)
    for ev in out:
        print(json.dumps(ev, separators=(",", ":")))


if __name__ == "__main__":
    main()
