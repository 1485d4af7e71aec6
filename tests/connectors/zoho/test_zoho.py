"""Zoho specifics against the simulator over real HTTPS: mapping, deletes, notifications."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import pytest

from crm_pulse.connectors.protocols import WebhookRequest
from crm_pulse.connectors.zoho.mapping import stage_status
from crm_pulse.errors import DataError, Unauthorized
from crm_pulse.sandbox.zoho import FakeZoho

from ..helpers import drain
from .harness import CHANNEL_TOKEN, CLIENT_ID, CLIENT_SECRET, REFRESH, make_harness


async def drain_pages(pages: Any) -> tuple[list[Any], Any]:
    """The bad records reported by every page, and the last cursor."""
    bad: list[Any] = []
    cursor = None
    async for page in pages:
        bad.extend(page.skipped)
        cursor = page.cursor
    return bad, cursor


OWNER = {"name": "Rep Two", "id": "5725767000000200002"}


def test_stage_status_from_forecast_type_category_and_probability() -> None:
    assert stage_status({"forecast_type": "Closed Won"}) == "won"
    assert stage_status({"forecast_type": "Closed Lost"}) == "lost"
    assert stage_status({"forecast_type": "Open", "probability": 100}) == "open"
    assert stage_status({"forecast_category": {"name": "Closed"}, "probability": 100}) == "won"
    assert stage_status({"forecast_category": {"name": "Closed"}, "probability": 0}) == "lost"
    assert stage_status({"forecast_category": {"name": "Omitted"}, "probability": 0}) == "lost"
    assert stage_status({"forecast_category": {"name": "Pipeline"}, "probability": 40}) == "open"
    assert stage_status({}) is None


async def test_modules_map_to_canonical_objects() -> None:
    async with make_harness(
        objects=["Accounts", "Contacts", "Leads", "Deals", "Cases", "Calls", "Events", "Tasks"],
        mapping={
            "deal_stages": {"Verbal Yes": "won"},
            "customer_since_field": "Customer_Since",
            "lifecycle": {"property": "Lifecycle", "values": {"Client": "customer"}},
        },
    ) as h:
        f = h.fake
        account = f.create("Accounts", {"Account_Name": "ACME", "Customer_Since": "2026-03-01"})
        won = f.create(
            "Deals",
            {
                "Stage": "Closed Won",
                "Amount": 900.5,
                "Closing_Date": "2026-11-02",
                "Owner": OWNER,
                "Account_Name": {"name": "ACME", "id": account},
                "Type": "Existing Business",
                "Pipeline": "Standard",
            },
        )
        lost = f.create(
            "Deals", {"Stage": "Closed Lost", "Amount": 5, "Closing_Date": "2026-11-03"}
        )
        verbal = f.create(
            "Deals", {"Stage": "Verbal Yes", "Amount": 7, "Closing_Date": "2026-11-04"}
        )
        open_ = f.create("Deals", {"Stage": "Negotiation/Review", "Amount": 8})
        contact = f.create(
            "Contacts",
            {"Email": "a@x.test", "Account_Name": {"id": account}, "Lifecycle": "Client"},
        )
        lead = f.create("Leads", {"Email": "l@x.test"})
        case = f.create("Cases", {"Status": "Closed", "Account_Name": {"id": account}})
        call = f.create(
            "Calls",
            {
                "Call_Start_Time": "2026-11-05T10:00:00+05:30",
                "What_Id": {"id": account},
                "$se_module": "Accounts",
            },
        )
        meeting = f.create("Events", {"Start_DateTime": "2026-11-06T09:00:00+01:00"})
        task = f.create("Tasks", {"Due_Date": "2026-11-07", "Status": "Not Started"})
        events, _ = await drain(h.connector.source.backfill(None))
        by_id = {e.id: e for e in events}
        deal = by_id[won].fields
        assert (deal["status"], deal["amount"], deal["owner_id"], deal["account_id"]) == (
            "won",
            "900.5",
            OWNER["id"],
            account,
        )
        assert (deal["closed_at"], deal["type"], deal["stage"], deal["pipeline"]) == (
            "2026-11-02T00:00:00Z",
            "upsell",
            "Closed Won",
            "Standard",
        )
        assert by_id[lost].fields["status"] == "lost"
        assert by_id[verbal].fields["status"] == "won"  # the deployment file's stage mapping
        assert by_id[open_].fields["status"] == "open" and by_id[open_].fields["closed_at"] is None
        assert by_id[account].object == "account"
        assert by_id[account].fields["customer_since"] == "2026-03-01T00:00:00Z"
        assert by_id[contact].fields["lifecycle"] == "customer"
        assert by_id[contact].fields["account_id"] == account
        assert (by_id[lead].object, by_id[lead].fields["lifecycle"]) == ("contact", "lead")
        assert (by_id[case].object, by_id[case].fields["status"]) == ("ticket", "closed")
        assert by_id[call].fields == {
            **by_id[call].fields,
            "type": "call",
            "occurred_at": "2026-11-05T04:30:00Z",
            "account_id": account,
        }
        assert by_id[meeting].fields["type"] == "meeting"
        assert by_id[meeting].fields["occurred_at"] == "2026-11-06T08:00:00Z"
        assert by_id[task].fields["type"] == "task"
        # versions are Modified_Time (carried with the org's +05:30 offset) in epoch ms
        modified = f.records["Deals"][won]["Modified_Time"]
        assert "+05:30" in modified
        assert by_id[won].version % 1000 == 0 and abs(by_id[won].version / 1000 - time.time()) < 60


async def test_deleted_records_become_deletes_newer_than_the_last_change() -> None:
    async with make_harness() as h:
        a, b, _c = h.seed_deals(3)
        events, cursor = await drain(h.connector.source.backfill(None))
        last = {e.id: e.version for e in events}
        h.fake.delete("Deals", a)
        h.fake.delete("Deals", b, permanent=True)
        events, cursor = await drain(h.connector.source.poll(cursor))
        deletes = {e.id: e for e in events if e.op == "delete"}
        assert set(deletes) == {a, b}
        assert all(deletes[i].version > last[i] for i in (a, b))
        # polled again: the overlap re-reads them, with the same versions (harmless)
        again, _ = await drain(h.connector.source.poll(cursor))
        assert {e.id: e.version for e in again if e.op == "delete"} == {
            i: deletes[i].version for i in (a, b)
        }


def _request(body: dict[str, object]) -> WebhookRequest:
    return WebhookRequest("POST", "https://x/webhooks/zoho", {}, json.dumps(body).encode(), 0)


async def test_notifications_verified_by_token_and_records_re_read() -> None:
    async with make_harness() as h:
        receiver = h.connector.receiver
        (deal,) = h.seed_deals(1)
        channel = h.fake.channels[str(h.connector.channel.channel_id)]
        assert channel["token"] == CHANNEL_TOKEN and channel["events"] == [
            "Accounts.all",
            "Deals.all",
        ]
        assert channel["expires_at"] > time.time() + 23 * 3600
        headers, body = h.fake.notification("Deals", "update", [deal])
        request = WebhookRequest("POST", "u", headers, body, 0)
        receiver.verify(request)
        (event,) = await receiver.parse(request)
        assert (event.id, event.op, event.fields["amount"]) == (deal, "upsert", "101")
        good = json.loads(body)
        with pytest.raises(Unauthorized, match="channel token"):
            receiver.verify(_request({**good, "token": CHANNEL_TOKEN[:-1] + "x"}))
        with pytest.raises(Unauthorized, match="channel token"):
            receiver.verify(_request({k: v for k, v in good.items() if k != "token"}))
        with pytest.raises(Unauthorized, match="another channel"):
            receiver.verify(_request({**good, "channel_id": "42"}))
        for ids in (["../settings/fields"], ["1 OR 1=1"], [], "123"):
            with pytest.raises(DataError):
                receiver.verify(_request({**good, "ids": ids}))
        with pytest.raises(DataError):
            receiver.verify(WebhookRequest("POST", "u", {}, b"not json", 0))
        # a deleted record: a delete event, no read
        h.fake.delete("Deals", deal)
        calls = len(h.fake.calls)
        (gone,) = await receiver.parse(_request({**good, "operation": "delete"}))
        assert (gone.id, gone.op) == (deal, "delete") and len(h.fake.calls) == calls
        # an update of a record deleted since: nothing to re-read, nothing emitted
        assert await receiver.parse(request) == []
        # a module this deployment does not read
        assert await receiver.parse(_request({**good, "module": "Cases"})) == []
        # one record that cannot be mapped does not hold back the others of the notification
        fine, bad = h.seed_deals(2)
        h.fake.records["Deals"][bad]["Amount"] = "n/a"
        parsed = await receiver.parse(_request({**good, "ids": [bad, fine]}))
        assert [e.id for e in parsed] == [fine]
        polled, _ = await drain_pages(h.connector.source.poll(None))
        assert [(b.object, b.id) for b in polled] == [("Deals", bad)]


async def test_channel_is_renewed_before_it_lapses() -> None:
    async with make_harness(channel_lifetime="1h") as h:
        keeper = h.connector.channel
        channel_id = str(keeper.channel_id)
        first = h.fake.channels[channel_id]["expires_at"]
        assert await keeper.ensure() and keeper.renewals == 1  # not due: nothing sent
        now = time.time()
        keeper.wall = lambda: now + 46 * 60  # 14 minutes left of an hour: renewed
        _, _cursor = await drain(h.connector.source.poll(None))
        assert keeper.renewals == 2
        assert h.fake.channels[channel_id]["expires_at"] > first + 40 * 60
        # a refused renewal is logged and tried again at the next poll; polling goes on
        keeper.wall = lambda: now + 100 * 60
        h.fake.rate_limit(1, retry_after=None)
        keeper.client.backoff = dataclasses.replace(keeper.client.backoff, attempts=1)
        assert not await keeper.ensure()
        assert await keeper.ensure() and keeper.renewals == 3


async def test_a_stage_added_later_is_read_from_the_picklist() -> None:
    async with make_harness() as h:
        h.seed_deals(1)
        _, cursor = await drain(h.connector.source.backfill(None))
        h.fake.stages.append(("Contract Signed", "Closed Won", "Closed", 100))
        h.fake.stages.append(("Went Dark", "Closed Lost", "Omitted", 0))
        h.connector.catalog.refresh_after = 0.0
        signed = h.fake.create("Deals", {"Stage": "Contract Signed", "Amount": 3})
        events, _ = await drain(h.connector.source.poll(cursor))
        assert {e.id: e.fields["status"] for e in events}[signed] == "won"
        dark = h.fake.create("Deals", {"Stage": "Went Dark", "Amount": 4})
        h.connector.catalog.stages.pop("Went Dark", None)
        headers, body = h.fake.notification("Deals", "insert", [dark])
        (event,) = await h.connector.receiver.parse(WebhookRequest("POST", "u", headers, body, 0))
        assert event.fields["status"] == "lost"


async def test_a_module_the_org_does_not_have_is_skipped() -> None:
    fake = FakeZoho(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH,
        modules=["Accounts", "Deals"],
        notify_api_writes=False,
    )
    async with make_harness(
        fake=fake, objects=["Cases", "Deals"], notify_url=None, channel_token=None
    ) as h:
        (deal,) = h.seed_deals(1)
        events, cursor = await drain(h.connector.source.backfill(None))
        assert [e.id for e in events] == [deal]
        assert h.connector.source.unavailable == {"Cases"}
        assert set(cursor) == {"Deals"}


async def test_who_changed_a_record_last_and_our_own_writes() -> None:
    """modified_by / modified_at: Modified_By's id and Modified_Time; a change made by the
    token's own user (a write-back) says no one; without ZohoCRM.users.READ the read goes on
    (a warning) and the write-back counts as that user's change."""
    from crm_pulse.sandbox.zoho import API_USER, REP

    async with make_harness() as h:
        deal = h.fake.create("Deals", {"Stage": "Qualification"}, by=REP)
        ours = h.fake.create("Deals", {"Stage": "Qualification"}, by=API_USER)
        events, _ = await drain(h.connector.source.backfill(None))
        got = {e.id: e.fields for e in events if e.object == "deal"}
        assert got[deal]["modified_by"] == REP["id"]
        assert got[deal]["modified_at"] == _iso(h.fake.records["Deals"][deal]["Modified_Time"])
        assert (got[ours]["modified_by"], got[ours]["modified_at"]) == (None, None)
    async with make_harness() as h:
        h.fake.missing_scopes.add("ZohoCRM.users.READ")
        ours = h.fake.create("Deals", {"Stage": "Qualification"}, by=API_USER)
        events, _ = await drain(h.connector.source.backfill(None))
        (event,) = [e for e in events if e.id == ours]
        assert event.fields["modified_by"] == API_USER["id"]


def _iso(zoho_time: str) -> str:
    from crm_pulse.connectors.zoho.mapping import to_iso

    text = to_iso(zoho_time)
    assert text is not None
    return text
