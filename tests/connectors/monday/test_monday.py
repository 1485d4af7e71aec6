"""monday specifics against the fake over real HTTP: mapping, cursors, limits, reconciliation."""

from __future__ import annotations

import time

import pytest

from crm_pulse.connectors.monday import MondayConnector
from crm_pulse.connectors.protocols import FieldSpec, FieldWrite
from crm_pulse.errors import FatalError, RateLimited
from crm_pulse.sandbox.monday import FakeMonday
from crm_pulse.sandbox.server import FakeServer

from ..helpers import drain
from .harness import CA, FIELD, TOKEN, make_harness, settings


async def test_deals_map_stage_to_status_with_close_time_owner_account_and_amount() -> None:
    async with make_harness(stages={"won": ["Won"], "lost": ["Lost"]}) as h:
        account = h.fake.create_item(h.accounts, "ACME", {"Owner": 7, "Domain": "acme.test"})
        won = h.fake.create_item(
            h.deals,
            "Big deal",
            {"Deal stage": "Won", "Deal value": 1250.5, "Owner": 3, "Accounts": int(account)},
        )
        lost = h.fake.create_item(h.deals, "Lost deal", {"Deal stage": "Lost", "Deal value": 10})
        open_ = h.fake.create_item(h.deals, "Open deal", {"Deal stage": "Proposal"})
        events, _ = await drain(h.connector.source.backfill(None))
        by_id = {e.id: e for e in events}
        w = by_id[won].fields
        assert (w["status"], w["stage"], w["amount"], w["owner_id"], w["account_id"]) == (
            "won",
            "Won",
            "1250.5",
            "3",
            account,
        )
        assert w["closed_at"] == w["stage_entered_at"] is not None
        assert by_id[lost].fields["status"] == "lost" and by_id[lost].fields["closed_at"]
        assert by_id[open_].fields["status"] == "open" and by_id[open_].fields["closed_at"] is None
        assert by_id[open_].fields["amount"] is None
        acme = by_id[account]
        assert acme.object == "account"
        assert (acme.fields["owner_id"], acme.fields["domain"]) == ("7", "acme.test")
        # the column crm-pulse writes is never read into a canonical field
        assert all(FIELD not in e.fields for e in events)
        assert events[0].version == pytest.approx(time.time() * 1000, abs=5000)


async def test_column_titles_from_the_deployment_file_and_a_close_date_column() -> None:
    async with make_harness(
        boards={
            "deals": {"id": "1000001", "columns": {"amount": "ARR", "closed_at": "Signed on"}},
            "accounts": {"id": "1000002"},
        },
        deal_type={"property": "Deal type", "values": {"New": "new", "Upsell": "upsell"}},
    ) as h:
        h.fake.add_column(h.deals, "ARR", "numbers")
        h.fake.add_column(h.deals, "Signed on", "date")
        h.fake.add_column(h.deals, "Deal type", "status", ["New", "Upsell", "Renewal"])
        deal = h.fake.create_item(
            h.deals,
            "D",
            {
                "Deal stage": "Won",
                "ARR": 99,
                "Deal value": 5,
                "Signed on": "2026-10-03",
                "Deal type": "Upsell",
            },
        )
        other = h.fake.create_item(h.deals, "E", {"Deal type": "Renewal"})
        events, _ = await drain(h.connector.source.backfill(None))
        by_id = {e.id: e for e in events}
        event = by_id[deal]
        assert event.fields["amount"] == "99"
        assert event.fields["closed_at"] == "2026-10-03T00:00:00Z"
        assert event.fields["type"] == "upsell"
        assert by_id[other].fields["type"] == "other"


async def test_contacts_and_activities_boards() -> None:
    async with make_harness(
        boards={"contacts": {"id": "1000003"}, "activities": {"id": "1000004"}},
        lifecycle={"property": "Type", "values": {"Lead": "lead", "Customer": "customer"}},
    ) as h:
        contacts = h.fake.add_board("Contacts", "contacts")
        activities = h.fake.add_board("Activities", "activities")
        person = h.fake.create_item(
            contacts, "Ann", {"Email": "ann@acme.test", "Type": "Customer", "Owner": 2}
        )
        call = h.fake.create_item(
            activities, "Intro call", {"Activity type": "Call", "Date": "2026-11-02T09:30:00"}
        )
        events, _ = await drain(h.connector.source.backfill(None))
        by_id = {e.id: e for e in events}
        assert by_id[person].object == "contact"
        assert by_id[person].fields["email"] == "ann@acme.test"
        assert by_id[person].fields["lifecycle"] == "customer"
        assert by_id[call].object == "activity"
        assert by_id[call].fields["type"] == "call"
        assert by_id[call].fields["occurred_at"] == "2026-11-02T09:30:00Z"


async def test_every_call_pins_the_api_version_and_sends_the_token() -> None:
    async with make_harness(api_version="2025-07") as h:
        h.seed_deals(2)
        await drain(h.connector.source.backfill(None))
        assert h.fake.versions and set(h.fake.versions) == {"2025-07"}


async def test_an_expired_cursor_restarts_from_the_last_updated_at_and_loses_nothing() -> None:
    async with make_harness(page_size=10) as h:
        base = int(time.time()) - 500
        ids = [
            h.fake.create_item(h.deals, f"D{i}", {"Deal value": i}, at=base + i) for i in range(35)
        ]
        seen: list[str] = []
        pages = 0
        async for page in h.connector.source.backfill(None):
            seen.extend(e.id for e in page.events)
            pages += 1
            if pages == 2:
                h.fake.expire_cursors()  # the next next_items_page meets CursorExpiredError
        assert set(ids) <= set(seen)
        assert h.connector.source.restarts == 1
        # the restart read from the newest updated_at reached, not from the first item
        assert seen.count(ids[0]) == 1
        assert len(seen) < 2 * len(ids)


async def test_complexity_budget_reads_wait_retry_in_seconds_writes_raise() -> None:
    async with make_harness(max_wait="60s") as h:
        (deal,) = h.seed_deals(1)
        waits: list[float] = []

        async def no_wait(seconds: float) -> None:
            waits.append(seconds)

        h.connector.client.sleep = no_wait
        h.fake.exhaust_complexity(2, 12)
        events, _ = await drain(h.connector.source.backfill(None))
        assert deal in {e.id for e in events}
        assert waits == [12, 12]
        h.fake.exhaust_complexity(1, 40)
        with pytest.raises(RateLimited) as info:
            await h.connector.sink.write([FieldWrite("monday", "deal", deal, FIELD, 1.0)])
        assert info.value.retry_after == 40
        # a budget that is really spent: the fake counts points per minute
        fake = FakeMonday(TOKEN, budget=500)
        fake.add_board("Deals", "deals")
        with FakeServer(fake.app(), ca=CA) as server:
            c = MondayConnector("monday", settings(server.url, boards={"deals": {"id": "1000001"}}))
            with pytest.raises(RateLimited) as info:
                await c.client.graphql(
                    "query { boards (ids: [1000001]) { items_page (limit: 500) { cursor } } }",
                    {},
                    "a heavy read",
                    retry=False,
                )
            assert info.value.retry_after is not None and info.value.retry_after > 0
            await c.aclose()


async def test_a_wrong_token_is_fatal_and_never_shown() -> None:
    async with make_harness() as h:
        fake = FakeMonday("the-real-token")
        with FakeServer(fake.app(), ca=CA) as server:
            c = MondayConnector("monday", settings(server.url))
            with pytest.raises(FatalError) as info:
                await c.client.columns("1000001")
            assert TOKEN not in str(info.value) and "token" in str(info.value)
            await c.aclose()
        assert h  # the harness' own fake was not called
        assert not h.fake.calls


async def test_reconciliation_finds_deletes_archives_and_restores_on_its_schedule() -> None:
    async with make_harness(reconcile_every="1h") as h:
        a, b, c = h.seed_deals(3)
        _, cursor = await drain(h.connector.source.backfill(None))
        h.fake.delete_item(a)
        h.fake.set_state(b, "archived")
        events, cursor = await drain(h.connector.source.poll(cursor))
        assert not [e for e in events if e.op == "delete"]  # not due yet: webhooks' job
        assert cursor is not None
        cursor = {**cursor, "deals": {**cursor["deals"], "checked": 0}}
        events, cursor = await drain(h.connector.source.poll(cursor))
        deletes = sorted(e.id for e in events if e.op == "delete")
        assert deletes == sorted([a, b])
        delete_version = max(e.version for e in events if e.op == "delete")
        # b is restored without a webhook: the next reconciliation states it again, newer
        h.fake.set_state(b, "active")
        assert cursor is not None
        cursor = {**cursor, "deals": {**cursor["deals"], "checked": 0}}
        events, cursor = await drain(h.connector.source.poll(cursor))
        restored = [e for e in events if e.id == b]
        assert restored and restored[-1].op == "upsert"
        assert restored[-1].version >= delete_version
        assert c not in {e.id for e in events if e.op == "delete"}


async def test_sink_coalesces_clears_and_explains_failures() -> None:
    async with make_harness() as h:
        d1, d2 = h.seed_deals(2)
        h.fake.add_column(h.deals, "Other")
        before = h.write_calls()
        results = await h.connector.sink.write(
            [
                FieldWrite("monday", "deal", d1, FIELD, 1.5),
                FieldWrite("monday", "deal", d1, "Other", 2),
                FieldWrite("monday", "deal", d2, FIELD, None),
                FieldWrite("monday", "deal", d2, "No such column", 3),
                FieldWrite("monday", "ticket", d2, FIELD, 3),
                FieldWrite("monday", "deal", "12x", FIELD, 3),
            ]
        )
        assert [r.ok for r in results] == [True, True, True, False, False, False]
        assert results[3].retriable and "crm-pulse provision" in results[3].reason
        assert not results[4].retriable and "no board" in results[4].reason
        assert not results[5].retriable
        assert h.write_calls() - before == 2
        assert (h.fake.value(d1, FIELD), h.fake.value(d1, "Other")) == ("1.5", "2")
        assert h.fake.value(d2, FIELD) is None
        h.fake.delete_item(d1)
        (gone,) = await h.connector.sink.write([FieldWrite("monday", "deal", d1, FIELD, 4.0)])
        assert not gone.ok and not gone.retriable and "InvalidItemIdException" in gone.reason


async def test_provision_creates_numbers_columns_once() -> None:
    async with make_harness() as h:
        specs = [
            FieldSpec("deal", FIELD, FIELD),
            FieldSpec("deal", "Pulse score", "Pulse score", description="crm-pulse: a score"),
            FieldSpec("account", "Won revenue", "Won revenue", unit="money"),
        ]
        missing = await h.connector.provisioner.missing(specs)
        assert [f.name for f in missing] == ["Pulse score", "Won revenue"]
        lines = await h.connector.provisioner.create(missing)
        assert "numbers column 'Pulse score' on board 1000001" in lines[0]
        assert h.fake.column(h.accounts, "Won revenue")["type"] == "numbers"
        assert await h.connector.provisioner.missing(specs) == []
        with pytest.raises(FatalError) as info:
            await h.connector.provisioner.missing([FieldSpec("ticket", "X", "X")])
        assert "no board for it" in str(info.value)


async def test_the_fake_reads_graphql_literals_and_refuses_what_monday_refuses() -> None:
    async with make_harness() as h:
        h.seed_deals(3)
        data = await h.connector.client.graphql(
            "query { boards (ids: [1000001]) { name items_page (limit: 2) { cursor items "
            "{ id name column_values { id text } } } } }",
            {},
            "literal query",
        )
        page = data["boards"][0]["items_page"]
        assert data["boards"][0]["name"] == "Deals"
        assert len(page["items"]) == 2 and page["cursor"]
        assert set(page["items"][0]) == {"id", "name", "column_values"}
        for bad in (
            "query { boards (ids: [1000001]) { items_page (limit: 501) { cursor } } }",
            "query { boards { nope } }",
            "query { boards (ids: [1 { id } }",
        ):
            with pytest.raises(Exception) as info:
                await h.connector.client.graphql(bad, {}, "bad query", retry=False)
            assert "monday refused bad query" in str(info.value)
