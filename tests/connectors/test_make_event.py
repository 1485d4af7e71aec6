"""The kit's ``make_event`` builds the event ``Event(...)`` builds (or raises the same error),
and the Salesforce mapper that uses it maps records to the events it mapped them to before."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import ValidationError

from crm_pulse.connectors import make_event
from crm_pulse.connectors.salesforce.mapping import SalesforceMapper
from crm_pulse.connectors.salesforce.settings import SalesforceMapping
from crm_pulse.metrics.events import Event


def former(**kw: Any) -> Event | str:
    if kw.get("fields") is None:  # make_event's default: no fields
        kw.pop("fields", None)
    try:
        return Event(**kw)
    except ValidationError as exc:
        return str(exc.errors(include_url=False))


def built(**kw: Any) -> Event | str:
    try:
        return make_event(
            kw["source"], kw["object"], kw["id"], kw["op"], kw["version"], kw.get("fields")
        )
    except ValidationError as exc:
        return str(exc.errors(include_url=False))


def same(**kw: Any) -> None:
    a, b = former(**kw), built(**kw)
    if isinstance(a, str) or isinstance(b, str):
        assert a == b, kw
        return
    assert a == b and a.values == b.values and a.canonical == b.canonical, kw
    assert a.model_dump() == b.model_dump()


DEAL = {
    "status": "won",
    "amount": "120.50",
    "owner_id": "u1",
    "closed_at": "2026-03-05T10:00:00.000Z",
    "type": "new",
}


@pytest.mark.parametrize(
    "kw",
    [
        {"source": "sf", "object": "deal", "id": "006A", "op": "upsert", "version": 5},
        {"source": "sf", "object": "deal", "id": "006A", "op": "delete", "version": 5},
        {"source": "sf", "object": "thing", "id": "x", "op": "upsert", "version": 1},
        {"source": "sf", "object": "deal", "id": 42, "op": "upsert", "version": 5},
        {"source": "sf", "object": "deal", "id": "é", "op": "upsert", "version": 5},
        {"source": "sf", "object": "deal", "id": "", "op": "upsert", "version": 5},
        {"source": "", "object": "deal", "id": "a", "op": "upsert", "version": 5},
        {"source": "sf", "object": "deal", "id": "a", "op": "upsert", "version": 2**63},
        {"source": "sf", "object": "deal", "id": "a", "op": "upsert", "version": 1.5},
        {"source": "sf", "object": "deal", "id": "a", "op": "upsert", "version": True},
        {"source": "sf", "object": "deal", "id": "a" * 300, "op": "upsert", "version": 1},
        {"source": "sf", "object": "deal", "id": "a", "op": "merge", "version": 1},
    ],
)
def test_make_event_gives_what_the_model_gives(kw: dict[str, Any]) -> None:
    for fields in (None, {}, dict(DEAL)):
        same(**kw, fields=fields)
    for bad in (
        {"amount": "lots"},
        {"status": "maybe"},
        {"closed_at": "yesterday"},
        {"amount": float("nan")},
        {"note": {"deep": [1, 2.5, None, True]}},
        {"stage": "\ud800"},
    ):
        same(**kw, fields={**DEAL, **bad})


def _record(rng: random.Random, i: int) -> dict[str, Any]:
    closed = rng.random() < 0.5
    stamp = f"2026-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}T{rng.randint(0, 23):02}:00:0"
    return {
        "attributes": {"type": "Opportunity"},
        "Id": f"006{i:012d}AAA",
        "Name": f"Deal {i}",
        "Amount": rng.choice([None, 0.0, 100.5, 12345.678, 1e9, -3.0]),
        "StageName": rng.choice(["Prospecting", "Closed Won", "Négociation", ""]),
        "IsClosed": closed,
        "IsWon": closed and rng.random() < 0.5,
        "CloseDate": rng.choice([None, "2026-12-31", "2025-02-28"]),
        "Type": rng.choice([None, "New Customer", "Existing Customer - Upgrade", "Other"]),
        "OwnerId": f"005{i % 7:012d}AAA",
        "AccountId": rng.choice([None, f"001{i % 11:012d}AAA"]),
        "CreatedDate": f"{stamp}1.{rng.randint(0, 999):03}+0000",
        "SystemModstamp": f"{stamp}2.{rng.randint(0, 999):03}+0000",
        "LastStageChangeDate": rng.choice([None, f"{stamp}3.000+0000"]),
        "LastModifiedById": rng.choice(["005000000000001AAA", "005000000000009AAA"]),
        "LastModifiedDate": f"{stamp}2.000+0000",
    }


def test_the_salesforce_mapper_maps_records_to_the_events_the_model_builds() -> None:
    mapper = SalesforceMapper(SalesforceMapping(), "salesforce", objects=["Opportunity"])
    mapper.learn_own_user("005000000000009AAA")
    rng = random.Random(7)
    for i in range(2000):
        record = _record(rng, i)
        event = mapper.event("Opportunity", record)
        again = Event.model_validate(event.model_dump())
        assert event == again and event.values == again.values
        assert event.canonical == again.canonical
        gone = mapper.delete("Opportunity", record)
        assert gone == Event.model_validate(gone.model_dump())
