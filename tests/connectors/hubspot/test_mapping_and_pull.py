"""HubSpot records of every mapped type, new pipeline stages, deletes, floods, rate limits."""

from __future__ import annotations

import pytest

from crm_pulse.connectors.protocols import FieldWrite

from ..helpers import drain
from .harness import FIELD, make_harness


async def test_every_object_type_maps_to_its_canonical_object() -> None:
    objects = [
        "companies",
        "contacts",
        "deals",
        "tickets",
        "calls",
        "emails",
        "meetings",
        "notes",
        "tasks",
        "feedback_submissions",
    ]
    async with make_harness(objects=objects) as h:
        f = h.fake
        company = f.create(
            "companies",
            {
                "domain": "acme.test",
                "hubspot_owner_id": "7",
                "hs_date_entered_customer": "2026-02-01T00:00:00Z",
            },
        )
        contact = f.create(
            "contacts",
            {
                "email": "ann@acme.test",
                "associatedcompanyid": company,
                "lifecyclestage": "marketingqualifiedlead",
            },
        )
        ticket = f.create(
            "tickets",
            {
                "hs_pipeline": "0",
                "hs_pipeline_stage": "4",
                "hs_primary_company_id": company,
                "closed_date": "2026-03-01T12:00:00Z",
                "first_agent_reply_date": "2026-03-01T10:00:00Z",
            },
        )
        acts = {
            kind: f.create(kind, {"hs_timestamp": "2026-03-02T09:30:00Z", "hubspot_owner_id": "7"})
            for kind in ("calls", "emails", "meetings", "notes", "tasks")
        }
        other = f.create("companies", {"domain": "other.test"})
        f.associate("meetings", acts["meetings"], "companies", other)
        f.associate("meetings", acts["meetings"], "companies", company)
        survey = f.create(
            "feedback_submissions",
            {
                "hs_survey_type": "NPS",
                "hs_response_value": "9",
                "hs_contact_id": contact,
                "hs_submission_timestamp": "2026-03-03T00:00:00Z",
            },
        )
        events, _ = await drain(h.connector.source.backfill(None))
        by = {(e.object, e.id): e.fields for e in events}
        account = by[("account", company)]
        assert account["domain"] == "acme.test" and account["owner_id"] == "7"
        assert account["customer_since"] == "2026-02-01T00:00:00.000Z"
        person = by[("contact", contact)]
        assert (person["lifecycle"], person["account_id"], person["email"]) == (
            "qualified",  # a marketing qualified lead
            company,
            "ann@acme.test",
        )
        case = by[("ticket", ticket)]
        assert (case["status"], case["account_id"]) == ("closed", company)
        assert case["closed_at"] == "2026-03-01T12:00:00.000Z"
        assert case["first_response_at"] == "2026-03-01T10:00:00.000Z"
        types = {by[("activity", rid)]["type"] for rid in acts.values()}
        accounts = {kind: by[("activity", rid)]["account_id"] for kind, rid in acts.items()}
        assert accounts == {**dict.fromkeys(acts, None), "meetings": min(company, other, key=int)}
        assert types == {"call", "email", "meeting", "note", "task"}
        assert all(
            by[("activity", rid)]["occurred_at"] == "2026-03-02T09:30:00.000Z"
            for rid in acts.values()
        )
        response = by[("survey_response", survey)]
        assert (response["survey"], response["score"], response["contact_id"]) == (
            "nps",
            "9",
            contact,
        )
        # every event is valid canonical data (its fields type without error)
        assert all(e.values or e.op == "delete" for e in events)


async def test_a_stage_added_to_the_pipeline_is_learned_with_its_entry_date() -> None:
    async with make_harness(objects=["deals"]) as h:
        (deal,) = h.seed_deals(1)
        _, cursor = await drain(h.connector.source.backfill(None))
        h.fake.add_stage("signedwon", "Signed", closed=True, won=True)
        h.fake.update("deals", deal, {"dealstage": "signedwon", "closedate": "2026-11-02"})
        events, _ = await drain(h.connector.source.poll(cursor))
        (event,) = [e for e in events if e.id == deal]
        assert event.fields["status"] == "won"
        assert event.fields["stage"] == "signedwon"
        assert event.fields["stage_entered_at"] is not None  # read again with the new property


async def test_polls_list_archived_records_only_every_so_often() -> None:
    async with make_harness(objects=["deals"], options={"archived_every": 3600.0}) as h:
        a, _ = h.seed_deals(2)
        _, cursor = await drain(h.connector.source.backfill(None))
        h.fake.archive("deals", a)
        events, cursor = await drain(h.connector.source.poll(cursor))
        assert [e for e in events if e.op == "delete"] == []  # not due yet (webhooks are sooner)
        state = dict(cursor["deals"])
        state["archived_checked_ms"] = 0  # an hour later
        events, _ = await drain(h.connector.source.poll({"deals": state}))
        deletes = [e for e in events if e.op == "delete"]
        assert [e.id for e in deletes] == [a]
        upserts = {e.id: e.version for e in events if e.op == "upsert"}
        assert deletes[0].version >= upserts.get(a, 0)


async def test_the_pipeline_edit_flood_and_our_writes_leave_canonical_state_equal() -> None:
    async with make_harness(objects=["deals"]) as h:
        ids = h.seed_deals(2_000)
        before, cursor = await drain(h.connector.source.backfill(None))
        state = {e.id: e.fields for e in before}
        writes = await h.connector.sink.write(
            [FieldWrite("hubspot", "deals", rid, FIELD, 0.5) for rid in ids[:100]]
        )
        assert all(r.ok for r in writes)
        assert h.fake.edit_pipeline() == 2_000
        after, _ = await drain(h.connector.source.poll(cursor))
        versions = {e.id: e.version for e in before}
        assert {e.id for e in after} == set(ids)
        for event in after:  # newer versions of identical canonical records
            assert event.version > versions[event.id]
            assert event.fields == state[event.id]
            assert FIELD not in event.fields


async def test_the_client_keeps_under_the_limits_the_headers_announce() -> None:
    async with make_harness(
        objects=["deals"], search_limit=True, options={"search_per_second": 4.0}
    ) as h:
        h.seed_deals(5)
        h.fake.rate_max = 6
        h.fake.rate_interval_ms = 1000
        for _ in range(3):  # 3 x (pipelines + search + archived) = 9 calls > 6 per second
            await drain(h.connector.source.poll(None))
        assert h.fake.throttled == 0
        assert h.connector.client.waited > 0
        assert h.connector.client.limits.max == 6


async def test_reads_wait_out_a_429_storm() -> None:
    async with make_harness(objects=["deals"]) as h:
        ids = h.seed_deals(3)
        h.fake.rate_limit(requests=3, retry_after=0.01)
        events, _ = await drain(h.connector.source.backfill(None))
        assert {e.id for e in events} == set(ids)
        # each 429 was waited out for exactly its Retry-After, by the client (urllib3's own
        # retries, which would sleep in the thread and lose the status, are off)
        assert h.connector.client.waited == pytest.approx(0.03)


async def test_an_instant_split_by_a_page_boundary_is_read_whole() -> None:
    async with make_harness(objects=["deals"]) as h:
        at = h.fake.now_ms()
        props = {"amount": "1", "dealstage": "closedwon", "pipeline": "default"}
        early = [h.fake.create("deals", props, modified_ms=at + i) for i in range(150)]
        shared = [h.fake.create("deals", props, modified_ms=at + 1000) for _ in range(100)]
        # page one: the 150 early ones and 50 of the shared instant (HubSpot promises no order
        # among ties; the fake returns the newest ids first)
        events, cursor = await drain(h.connector.source.backfill(None))
        assert sorted(e.id for e in events) == sorted(early + shared)
        assert cursor["deals"] == {**cursor["deals"], "t": at + 1000, "id": max(shared, key=int)}
        assert all(len(b["sorts"]) == 1 for b in h.fake.search_bodies)  # HubSpot's one rule


async def test_deal_amounts_are_read_in_the_portal_currency() -> None:
    async with make_harness(objects=["deals"]) as h:
        home = h.fake.create("deals", {"amount": "100", "dealstage": "closedwon"})
        euro = h.fake.create(
            "deals",
            {
                "amount": "100",
                "deal_currency_code": "EUR",
                "amount_in_home_currency": "108.5",
                "dealstage": "closedwon",
            },
        )
        events, _ = await drain(h.connector.source.backfill(None))
        amounts = {e.id: e.fields["amount"] for e in events}
        assert amounts == {home: "100", euro: "108.5"}


async def test_connections_are_reused_across_calls() -> None:
    async with make_harness(objects=["deals"]) as h:
        h.seed_deals(3)
        for _ in range(10):
            # a search, an archived listing and the owners (active and archived) each
            await drain(h.connector.source.poll(None))
        assert len(h.fake.calls) >= 20
        # one pool per API (pipelines, search, objects, owners), not one connection per call
        assert len(h.fake.connections) <= 4
