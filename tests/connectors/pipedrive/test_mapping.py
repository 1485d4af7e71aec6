"""Persons, organizations and activities become contacts, accounts and activities."""

from __future__ import annotations

from ..helpers import drain
from .harness import make_harness


async def test_persons_organizations_and_activities_by_configured_names() -> None:
    async with make_harness(
        objects=["persons", "organizations", "activities"],
        mapping={
            "customer_since_field": "Customer since",
            "churned_at_field": "Churn date",
            "lifecycle": {"property": "Stage", "values": {"Lead": "lead", "Client": "customer"}},
            "activity_type": {"property": "type", "values": {"call": "call"}},
        },
    ) as h:
        since = h.fake.add_field("organizations", "Customer since", "date")
        churn = h.fake.add_field("organizations", "Churn date", "date")
        stage = h.fake.add_field("persons", "Stage", "enum", ["Lead", "Client"])
        org = h.fake.create(
            "organizations",
            {"owner_id": 4, "custom_fields": {since: "2025-06-01", churn: "2026-10-31"}},
        )
        person = h.fake.create(
            "persons",
            {
                "org_id": int(org),
                "owner_id": 4,
                "emails": [
                    {"value": "old@acme.test", "primary": False},
                    {"value": "ana@acme.test", "primary": True},
                ],
                "custom_fields": {stage: 2},
            },
        )
        call = h.fake.create(
            "activities",
            {
                "type": "call",
                "owner_id": 4,
                "org_id": int(org),
                "due_date": "2026-11-05",
                "due_time": "14:30",
            },
        )
        lunch = h.fake.create("activities", {"type": "lunch", "due_date": "2026-11-06"})
        events, _ = await drain(h.connector.source.backfill(None))
        by = {(e.object, e.id): e.fields for e in events}
        account = by[("account", org)]
        assert account["customer_since"] == "2025-06-01T00:00:00Z"
        assert account["churned_at"] == "2026-10-31T00:00:00Z"
        assert account["owner_id"] == "4"
        contact = by[("contact", person)]
        assert (contact["email"], contact["account_id"], contact["lifecycle"]) == (
            "ana@acme.test",
            org,
            "customer",  # enum option id 2 -> its label "Client" -> customer
        )
        activity = by[("activity", call)]
        assert (activity["type"], activity["occurred_at"], activity["account_id"]) == (
            "call",
            "2026-11-05T14:30:00Z",
            org,
        )
        assert by[("activity", lunch)]["type"] == "task"  # not listed: the default
