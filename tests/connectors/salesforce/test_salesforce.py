"""Salesforce-specific behaviour: real simple-salesforce over HTTPS against FakeSalesforce."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from crm_pulse.config import load_config_text
from crm_pulse.connectors.protocols import Cursor, FieldSpec, FieldWrite, WebhookRequest
from crm_pulse.connectors.salesforce import SalesforceConnector
from crm_pulse.connectors.salesforce.mapping import to_iso
from crm_pulse.connectors.salesforce.webhooks import ACK, ACK_CONTENT_TYPE
from crm_pulse.errors import DataError, FatalError, RateLimited, Unauthorized
from crm_pulse.metrics import Engine, build_catalog
from crm_pulse.metrics.events import Event
from crm_pulse.sandbox.salesforce import FakeSalesforce, sf_time
from crm_pulse.sandbox.server import FakeServer, TestCA

from ..helpers import drain, write_through_outbox
from .harness import FIELD, ORG_ID, PAGE, SECRET, SESSION, SalesforceHarness, make_harness

OWNER = "005000000000901AAA"


def by_id(events: list[Event]) -> dict[str, Event]:
    out: dict[str, Event] = {}
    for e in events:
        if e.id not in out or e.version >= out[e.id].version:
            out[e.id] = e
    return out


def sf_client(h: SalesforceHarness) -> Salesforce:
    session = requests.Session()
    assert h.server.ca is not None
    session.verify = str(h.server.ca.cert_path)
    session.trust_env = False
    return Salesforce(session_id=SESSION, instance_url=h.server.url, session=session)


# ---------------------------------------------------------------------- mapping


async def test_every_object_maps_to_its_canonical_object() -> None:
    fake = FakeSalesforce(session_id=SESSION, organization_id=ORG_ID)
    fake.add_object(
        "NPS_Response__c",
        {
            "Account__c": "reference",
            "Contact__c": "reference",
            "Score__c": "double",
            "Kind__c": "picklist",
        },
    )
    extra = {
        "forecasting_quotas": True,
        "mapping": {
            "survey_object": "NPS_Response__c",
            "survey_type": {"property": "Kind__c", "values": {"NPS": "nps"}},
            "deal_type": {
                "property": "Type",
                "values": {"New Customer": "new", "Renewal Business": "renewal"},
            },
        },
    }
    async with make_harness(fake=fake, **extra) as h:
        acc = fake.create(
            "Account", {"Name": "ACME", "Website": "https://www.Acme.test/about", "OwnerId": OWNER}
        )
        won = fake.create(
            "Opportunity",
            {
                "Name": "W",
                "AccountId": acc,
                "OwnerId": OWNER,
                "Amount": 1200.5,
                "StageName": "Prospecting",
                "CloseDate": "2026-03-31",
                "Type": "Renewal Business",
            },
        )
        fake.update("Opportunity", won, {"StageName": "Closed Won"})
        lost = fake.create(
            "Opportunity",
            {"Name": "L", "StageName": "Closed Lost", "CloseDate": "2026-02-01", "Type": "Odd"},
        )
        open_ = fake.create(
            "Opportunity",
            {
                "Name": "O",
                "StageName": "Qualification",
                "CloseDate": "2026-09-01",
                "Type": "New Customer",
            },
        )
        lead = fake.create(
            "Lead", {"LastName": "L", "Company": "C", "Email": "l@acme.test", "OwnerId": OWNER}
        )
        conv = fake.create(
            "Lead",
            {
                "LastName": "M",
                "Company": "C",
                "Email": "m@acme.test",
                "IsConverted": True,
                "ConvertedDate": "2026-03-02",
                "ConvertedAccountId": acc,
            },
        )
        contact = fake.create(
            "Contact", {"LastName": "M", "Email": "m@acme.test", "AccountId": acc}
        )
        case = fake.create("Case", {"Subject": "S", "AccountId": acc, "Status": "New"})
        fake.update("Case", case, {"Status": "Closed"})
        call = fake.create(
            "Task",
            {"Subject": "c", "TaskSubtype": "Call", "OwnerId": OWNER, "ActivityDate": "2026-03-03"},
        )
        todo = fake.create("Task", {"Subject": "t", "OwnerId": OWNER})
        meeting = fake.create(
            "Event", {"Subject": "m", "ActivityDateTime": "2026-03-04T15:00:00.000+0000"}
        )
        fake.update("Case", case, {"Subject": "S2"}, by=OWNER, modified_ms=1_772_971_200_000)
        nps = fake.create("NPS_Response__c", {"Account__c": acc, "Score__c": 9, "Kind__c": "NPS"})
        other = fake.create("NPS_Response__c", {"Score__c": 3, "Kind__c": "Pulse"})
        quota = fake.create(
            "ForecastingQuota",
            {"QuotaOwnerId": OWNER, "QuotaAmount": 50000, "StartDate": "2026-03-01"},
        )
        rep = fake.create(
            "User", {"Name": "R", "Username": "r@x", "Email": "r@x.test", "IsActive": True}
        )
        gone = fake.create("User", {"Name": "G", "Username": "g@x", "IsActive": True})
        fake.update("User", gone, {"IsActive": False})
        q2 = fake.create("Period", {"Type": "Quarter", "StartDate": "2026-04-01"})
        quarterly = fake.create(
            "ForecastingQuota",
            {
                "QuotaOwnerId": OWNER,
                "QuotaAmount": 150000,
                "StartDate": "2026-04-01",
                "PeriodId": q2,
            },
        )

        events, _ = await drain(h.connector.source.backfill(None))
        got = by_id(events)
        assert got[acc].object == "account"
        assert got[acc].fields["domain"] == "acme.test" and got[acc].fields["owner_id"] == OWNER
        w = got[won].fields
        assert got[won].object == "deal"
        assert (w["status"], w["type"], w["stage"]) == ("won", "renewal", "Closed Won")
        assert w["closed_at"] == "2026-03-31T12:00:00.000Z"  # noon UTC: the same day everywhere
        assert got[won].values["amount"] == 1_200_500_000
        assert w["stage_entered_at"] is not None
        assert w["stage_entered_at"] != w["created_at"]  # LastStageChangeDate of the stage change
        assert (got[lost].fields["status"], got[lost].fields["type"]) == ("lost", "other")
        o = got[open_].fields
        assert (o["status"], o["type"], o["closed_at"]) == ("open", "new", None)
        assert o["stage_entered_at"] == o["created_at"]  # never changed stage
        assert got[lead].fields["lifecycle"] == "lead" and got[lead].fields["converted_at"] is None
        c = got[conv].fields
        assert c["converted_at"] == "2026-03-02T12:00:00.000Z" and c["account_id"] == acc
        assert c["email"] is None  # the Contact carries it: not a duplicate person
        assert got[contact].fields["lifecycle"] == "other"
        assert got[contact].fields["email"] == "m@acme.test"
        t = got[case].fields
        assert got[case].object == "ticket" and t["status"] == "closed" and t["closed_at"]
        assert got[call].fields["type"] == "call"
        assert got[call].fields["occurred_at"] == "2026-03-03T12:00:00.000Z"
        assert got[todo].fields["type"] == "task" and got[todo].fields["occurred_at"]
        assert got[meeting].fields == {
            "type": "meeting",
            "owner_id": None,
            "account_id": None,
            "occurred_at": "2026-03-04T15:00:00.000Z",
            # created through the API as crm-pulse's own user: no one's change
            "modified_by": None,
            "modified_at": None,
        }
        # a user's last change: LastModifiedById / LastModifiedDate (CRM adoption)
        assert t["modified_by"] == OWNER and t["modified_at"] == "2026-03-08T12:00:00.000Z"
        assert got[nps].object == "survey_response"
        assert (got[nps].fields["survey"], got[nps].values["score"]) == ("nps", 9_000_000)
        assert got[other].op == "delete"  # survey_type.default null: not an NPS or CSAT answer
        q = got[quota]
        assert (q.object, q.fields["owner_id"], q.fields["period"]) == ("quota", OWNER, "month")
        assert str(q.values["period_start"]) == "2026-03-01"
        assert got[quarterly].fields["period"] == "quarter"
        u = got[rep]
        assert (u.object, u.fields["email"], u.fields["deactivated_at"]) == (
            "user",
            "r@x.test",
            None,
        )
        assert u.fields["created_at"]
        # no deactivation date in Salesforce: the inactive user's last change stands for it
        assert got[gone].fields["deactivated_at"] == to_iso(
            fake.value("User", gone, "SystemModstamp")
        )
        for e in events:
            assert e.version == int(
                datetime.fromisoformat(
                    str(fake.value(_sobject(fake, e.id), e.id, "SystemModstamp")).replace(
                        "+0000", "+00:00"
                    )
                ).timestamp()
                * 1000
            )


def _sobject(fake: FakeSalesforce, rid: str) -> str:
    return next(s for s, rows in fake.records.items() if rid in rows)


async def test_a_record_that_cannot_be_mapped_is_reported_not_dropped_silently() -> None:
    async with make_harness(objects=["Opportunity"]) as h:
        (good,) = h.seed_deals(1)
        bad = h.fake.create("Opportunity", {"Name": "x", "StageName": "Prospecting", "Amount": 5.0})
        h.fake.records["Opportunity"][bad]["Amount"] = "not money"
        events, skipped = [], []
        async for page in h.connector.source.backfill(None):
            events.extend(page.events)
            skipped.extend(page.skipped)
        assert good in {e.id for e in events} and bad not in {e.id for e in events}
        assert [(r.object, r.id) for r in skipped] == [("Opportunity", bad)]  # to quarantine
        assert f"Salesforce Opportunity {bad}" in str(skipped[0])
        assert "amount" in skipped[0].reason


# ---------------------------------------------------------------------- pull


async def test_backfill_pages_with_next_records_url_and_resumes_exactly() -> None:
    async with make_harness(objects=["Opportunity"]) as h:
        ids = h.seed_deals(250) + h.seed_deals(250, same_modified_at=True)
        source = h.connector.source
        source.chunk = 120  # pages of ours cut through the fake's pages of 200
        seen: list[str] = []
        cursor: Cursor | None = None
        async for page in source.backfill(None):
            seen.extend(e.id for e in page.events)
            cursor = page.cursor
            if len(seen) >= 360:  # interrupted inside the 250 records sharing one timestamp
                break
        assert cursor is not None and cursor["Opportunity"]["id"] == seen[-1]
        rest, _ = await drain(source.backfill(cursor))
        resumed = [e.id for e in rest]
        assert sorted(seen + resumed) == sorted(ids)  # nothing lost, nothing read twice
        queries = [p for m, p in h.fake.requests_seen if "/query" in p]
        assert any("/query/01g" in p for p in queries)  # followed nextRecordsUrl


@pytest.mark.parametrize(("overlap", "caught"), [("120s", True), ("30s", False)])
async def test_poll_overlap_catches_a_late_commit_with_an_older_timestamp(
    overlap: str, caught: bool
) -> None:
    async with make_harness(objects=["Opportunity"], overlap=overlap) as h:
        h.seed_deals(1)
        _, cursor = await drain(h.connector.source.backfill(None))
        assert cursor is not None
        # a transaction that started earlier commits now: its SystemModstamp is 60 s older
        late_ms = cursor["Opportunity"]["t"] - 60_000
        (b,) = h.seed_deals(1)
        h.fake.update("Opportunity", b, {"Amount": 7.0}, modified_ms=late_ms)
        events, cursor2 = await drain(h.connector.source.poll(cursor))
        assert (b in {e.id for e in events}) is caught
        assert cursor2 is not None and cursor2["Opportunity"]["t"] >= cursor["Opportunity"]["t"]


async def test_backfill_since_and_archived_activities() -> None:
    async with make_harness(objects=["Opportunity", "Task"], backfill_since="2026-01-01") as h:
        old = h.fake.create(
            "Opportunity", {"Name": "old", "StageName": "Prospecting"}, modified_ms=1767225599000
        )  # 2025-12-31T23:59:59Z
        new = h.fake.create(
            "Opportunity", {"Name": "new", "StageName": "Prospecting"}, modified_ms=1767225600000
        )  # 2026-01-01T00:00:00Z
        task = h.fake.create("Task", {"Subject": "call", "TaskSubtype": "Call"})
        events, _ = await drain(h.connector.source.backfill(None))
        assert {e.id for e in events} == {new, task}
        assert old not in {e.id for e in events}
        # Tasks are read with queryAll (Salesforce hides archived activities from query)
        paths = [p for _, p in h.fake.requests_seen]
        assert any(p.endswith("/queryAll/") for p in paths)


async def test_poll_with_equal_timestamps_across_pages_loses_nothing() -> None:
    async with make_harness(objects=["Opportunity"]) as h:
        _, cursor = await drain(h.connector.source.backfill(None))
        ids = h.seed_deals(650, same_modified_at=True)  # four fake pages of 200
        events, cursor = await drain(h.connector.source.poll(cursor))
        assert {e.id for e in events} == set(ids)
        assert len(events) == 650


async def test_deletes_and_undeletes() -> None:
    async with make_harness(objects=["Opportunity"]) as h:
        a, _b = h.seed_deals(2)
        events, cursor = await drain(h.connector.source.backfill(None))
        engine = Engine(build_catalog())
        engine.apply_all(events)
        first = by_id(events)[a].version
        h.fake.delete("Opportunity", a)
        events, cursor = await drain(h.connector.source.poll(cursor))
        deletes = [e for e in events if e.op == "delete"]
        assert [e.id for e in deletes] == [a] and deletes[0].version > first
        assert engine.apply_all(events) >= 1
        # the query hides the deleted row; queryAll shows it
        sf = sf_client(h)
        assert sf.query("SELECT Id FROM Opportunity WHERE IsDeleted = true")["records"] == []
        rows = sf.query_all(
            "SELECT Id FROM Opportunity WHERE IsDeleted = true", include_deleted=True
        )["records"]
        assert [r["Id"] for r in rows] == [a]
        h.fake.undelete("Opportunity", a)
        events, _ = await drain(h.connector.source.poll(cursor))
        back = [e for e in events if e.id == a and e.op == "upsert"]
        assert back and back[-1].version > deletes[0].version
        # applying everything in any order ends with the record present
        engine2 = Engine(build_catalog())
        engine2.apply_all(reversed([*deletes, *back]))
        assert engine2.apply_all(deletes) == 0  # the delete is older than the undelete


async def test_the_fake_is_strict_about_soql() -> None:
    async with make_harness() as h:
        sf = sf_client(h)
        bad = {
            "SELECT Id FROM Opportunity WHERE SystemModstamp >= 2026-01-01T00:00:00Z "
            "AND Id > '0' OR IsDeleted = false": "MALFORMED_QUERY",
            "SELECT Id, FROM Opportunity": "MALFORMED_QUERY",
            "SELECT Id FROM Opportunity WHERE Name LIKE 'A%'": "MALFORMED_QUERY",
            "SELECT Id FROM Opportunity GROUP BY OwnerId": "MALFORMED_QUERY",
            "SELECT Nope__c FROM Opportunity": "INVALID_FIELD",
            "SELECT Id FROM Opportunity WHERE SystemModstamp >= '2026-01-01'": "INVALID_FIELD",
            "SELECT Id FROM Nothing__c": "INVALID_TYPE",
        }
        for soql, code in bad.items():
            with pytest.raises(SalesforceMalformedRequest) as info:
                sf.query(soql)
            assert info.value.content[0]["errorCode"] == code, soql
        ok = sf.query(
            "SELECT Id FROM Opportunity WHERE (SystemModstamp > 2026-01-01T00:00:00Z OR "
            "(SystemModstamp = 2026-01-01T00:00:00Z AND Id > '006')) AND IsDeleted = false "
            "ORDER BY SystemModstamp ASC, Id ASC LIMIT 5"
        )
        assert ok["done"] is True


async def test_an_org_without_a_mapped_field_is_a_fatal_error_naming_it() -> None:
    fake = FakeSalesforce(session_id=SESSION, organization_id=ORG_ID)
    fake.add_object("Survey__c", {"Score__c": "double"})  # no Account__c, Contact__c, type
    async with make_harness(fake=fake, mapping={"survey_object": "Survey__c"}) as h:
        with pytest.raises(FatalError, match="Account__c"):
            await drain(h.connector.source.backfill(None))
    override = {"fields": {"deal": {"amount": "Net_Amount__c"}}}
    async with make_harness(objects=["Opportunity"], mapping=override) as h:
        with pytest.raises(FatalError, match="No such column 'Net_Amount__c'"):
            await drain(h.connector.source.backfill(None))
        h.fake.add_field("Opportunity", "Net_Amount__c", "currency")
        (deal,) = h.seed_deals(1)
        h.fake.update("Opportunity", deal, {"Net_Amount__c": 77.5})
        events, _ = await drain(h.connector.source.backfill(None))
        assert by_id(events)[deal].fields["amount"] == "77.5"  # read from the override


async def test_the_daily_budget_share_pauses_before_salesforce_refuses() -> None:
    fake = FakeSalesforce(session_id=SESSION, organization_id=ORG_ID, daily_limit=40, page_size=10)
    async with make_harness(fake=fake, objects=["Opportunity"], budget_share=0.5) as h:
        h.seed_deals(300)
        with pytest.raises(RateLimited) as info:
            await drain(h.connector.source.backfill(None))
        budget = h.connector.client.budget
        assert budget.limit == 40 and budget.ours == 20
        assert fake.api_used == 20  # stopped at its share, before the org's limit
        assert info.value.retry_after is not None and info.value.retry_after > 3600


async def test_request_limit_exceeded_pauses_and_the_poll_resumes_from_its_cursor() -> None:
    async with make_harness(objects=["Opportunity"]) as h:
        ids = h.seed_deals(450)
        h.connector.client.limit_pause = 900
        cursor: Cursor | None = None
        got: list[str] = []
        h.fake.refuse(1)
        with pytest.raises(RateLimited) as info:
            async for page in h.connector.source.backfill(cursor):
                got.extend(e.id for e in page.events)
                cursor = page.cursor
        assert info.value.retry_after == 900
        assert not isinstance(info.value, FatalError)
        events, _ = await drain(h.connector.source.backfill(cursor))
        assert {*got, *(e.id for e in events)} == set(ids)


async def test_an_invalid_session_is_fatal_and_names_no_secret() -> None:
    async with make_harness() as h:
        h.fake.session_id = "another"
        with pytest.raises(FatalError) as info:
            await drain(h.connector.source.poll(None))
        assert "INVALID_SESSION_ID" in str(info.value) and SESSION not in str(info.value)


async def test_client_credentials_login_and_a_wrong_secret() -> None:
    fake = FakeSalesforce(
        session_id=SESSION, organization_id=ORG_ID, client_id="ck", client_secret="cs"
    )
    ca = TestCA()
    fake.add_field("Opportunity", FIELD)
    with FakeServer(fake.app(), ca=ca) as server:
        good = {
            "instance_url": server.url,
            "client_id": "ck",
            "client_secret": "cs",
            "ca_cert": str(ca.cert_path),
        }
        connector = SalesforceConnector("salesforce", good)
        deal = fake.create("Opportunity", {"Name": "x", "StageName": "Prospecting"})
        events, _ = await drain(connector.source.backfill(None))
        assert deal in {e.id for e in events}
        await connector.aclose()
        # an expired session is renewed with the client credentials, once
        fake.session_id = "renewed-session"
        renewed = SalesforceConnector("salesforce", good)
        await drain(renewed.source.poll(None))
        fake.session_id = "renewed-again"
        events, _ = await drain(renewed.source.poll(None))
        assert deal in {e.id for e in events}
        await renewed.aclose()
        bad = SalesforceConnector("salesforce", good | {"client_secret": "wrong"})
        with pytest.raises(FatalError, match="client credentials") as info:
            await drain(bad.source.poll(None))
        assert "wrong" not in str(info.value)
        await bad.aclose()


# ---------------------------------------------------------------------- Outbound Messages


async def test_outbound_messages_valid_forged_repeated_reordered() -> None:
    async with make_harness(objects=["Opportunity"]) as h:
        receiver = h.connector.receiver
        ids = h.seed_deals(3)
        first = h.request(h.fake.outbound_message("Opportunity", ids))
        receiver.verify(first)
        calls = len(h.fake.requests_seen)
        events = await receiver.parse(first)
        # mapped from the message: no record read (only, once, which user crm-pulse is)
        asked = [path for _m, path in list(h.fake.requests_seen)[calls:]]
        assert [p.rsplit("/", 3)[-3:] for p in asked] == [["chatter", "users", "me"]]
        polled, _ = await drain(h.connector.source.backfill(None))
        assert {e.id: e.fields for e in events} == {e.id: e.fields for e in polled}
        assert {e.id: e.version for e in events} == {e.id: e.version for e in polled}

        h.fake.update("Opportunity", ids[0], {"StageName": "Closed Won"})
        second = h.request(h.fake.outbound_message("Opportunity", ids[:1]))
        newer = await receiver.parse(second)
        assert newer[0].fields["status"] == "won"

        # delivered again and out of order: the state is the newest one
        engine = Engine(build_catalog())
        stream = [*newer, *events, *await receiver.parse(first), *newer]
        engine.apply_all(stream)
        reordered = Engine(build_catalog())
        reordered.apply_all(reversed(stream))
        now = int(time.time() * 1000)
        assert engine.report(now) == reordered.report(now)
        assert engine.apply_all(await receiver.parse(second)) == 0  # a repeat changes nothing

        # one message carrying the same record twice keeps the newer state
        both = h.fake.outbound_message("Opportunity", [ids[1]])
        h.fake.update("Opportunity", ids[1], {"Amount": 999.0})
        later = h.fake.outbound_message("Opportunity", [ids[1]])
        merged = _merge_messages(both, later)
        (one,) = await receiver.parse(h.request(merged))
        assert one.fields["amount"] == "999"

        with pytest.raises(Unauthorized, match="token"):
            receiver.verify(h.request(h.fake.outbound_message("Opportunity", ids), "guess"))
        with pytest.raises(Unauthorized, match="token"):
            receiver.verify(WebhookRequest("POST", h.url().split("?")[0], {}, first.body, 0))
        forged_org = h.fake.outbound_message(
            "Opportunity", ids, organization_id="00D999999999999AAA"
        )
        with pytest.raises(Unauthorized, match="another org"):
            receiver.verify(h.request(forged_org))
        # a 15-character org id names the same org
        short = h.fake.outbound_message("Opportunity", ids, organization_id=ORG_ID[:15])
        receiver.verify(h.request(short))


def _merge_messages(a: bytes, b: bytes) -> bytes:
    """One message holding the notifications of both (Salesforce batches queued ones)."""
    start = b.index(b"<Notification>")
    end = b.rindex(b"</Notification>") + len(b"</Notification>")
    at = a.rindex(b"</notifications>")
    return a[:at] + b[start:end] + a[at:]


async def test_malformed_or_oversized_messages_are_data_errors() -> None:
    async with make_harness(objects=["Opportunity"]) as h:
        receiver = h.connector.receiver
        for body in (
            b"not xml",
            b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>",
            b'<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body/></Envelope>',
        ):
            with pytest.raises(DataError):
                receiver.verify(h.request(body))
        ids = h.seed_deals(101)
        with pytest.raises(DataError, match="at most 100"):
            receiver.verify(h.request(h.fake.outbound_message("Opportunity", ids)))
        # a message set up without every mapped field is not trusted: its records are read
        polled = by_id((await drain(h.connector.source.backfill(None)))[0])
        h.fake.delete("Opportunity", ids[1])
        partial = h.fake.outbound_message(
            "Opportunity", ids[:2], fields=["Amount", "StageName", "SystemModstamp"]
        )
        before = len(h.fake.requests_seen)
        first, gone = await receiver.parse(h.request(partial))
        assert len(h.fake.requests_seen) - before == 2  # by id, then the missing one in queryAll
        assert (first.id, first.op, first.fields) == (ids[0], "upsert", polled[ids[0]].fields)
        assert (gone.id, gone.op) == (ids[1], "delete") and gone.version > polled[ids[1]].version
        # a complete message is mapped as it is, without a call
        before = len(h.fake.requests_seen)
        (whole,) = await receiver.parse(h.request(h.fake.outbound_message("Opportunity", ids[:1])))
        assert whole == first and len(h.fake.requests_seen) == before
        # an object crm-pulse does not read is reported, not mapped
        acc = h.fake.create("Account", {"Name": "A"})
        assert await receiver.parse(h.request(h.fake.outbound_message("Account", [acc]))) == []
        assert "Account is not read" in receiver.skipped[-1]


async def test_salesforce_gets_its_soap_ack_through_the_http_server() -> None:
    from crm_pulse.streams.http.app import build_app

    class Inbox:
        def __init__(self) -> None:
            self.stored: list[WebhookRequest] = []

        async def accept(self, connector: str, request: WebhookRequest) -> None:
            self.stored.append(request)

    async def status() -> dict[str, Any]:
        return {}

    async with make_harness(objects=["Opportunity"]) as h:
        ids = h.seed_deals(2)
        inbox = Inbox()
        receiver = h.connector.receiver
        assert receiver.ack_response(h.request(b"")) == (ACK_CONTENT_TYPE, ACK)
        app = build_app({"salesforce": receiver}, inbox, status)
        ca = TestCA()
        with FakeServer(app, ca=ca) as http:
            url = f"{http.url}{receiver.path}?token={SECRET}"
            assert h.fake.send_outbound_message(url, "Opportunity", ids, ca_path=str(ca.cert_path))
            wrong = f"{http.url}{receiver.path}?token=nope"
            assert not h.fake.send_outbound_message(
                wrong, "Opportunity", ids, ca_path=str(ca.cert_path)
            )
        assert len(inbox.stored) == 1
        events = await receiver.parse(inbox.stored[0])
        assert {e.id for e in events} == set(ids)


# ---------------------------------------------------------------------- write-back


async def test_writes_partial_failures_and_the_client_header() -> None:
    async with make_harness(objects=["Opportunity"]) as h:
        ids = h.seed_deals(4)
        user = h.fake.create("User", {"Name": "Rep", "Username": "rep@acme.test"})
        h.fake.add_field("User", "Won_MTD__c")
        h.fake.add_field("Opportunity", "Deals_Won__c")
        h.fake.delete("Opportunity", ids[1])
        h.fake.lock_rows([ids[2]])
        writes = [
            FieldWrite("salesforce", "Opportunity", ids[0], FIELD, 0.5),
            FieldWrite("salesforce", "Opportunity", ids[0], "Deals_Won__c", 3),
            FieldWrite("salesforce", "Opportunity", ids[1], FIELD, 0.1),
            FieldWrite("salesforce", "Opportunity", ids[2], FIELD, 0.2),
            FieldWrite("salesforce", "Opportunity", "006999999999999AAA", FIELD, 0.3),
            FieldWrite("salesforce", "Opportunity", ids[3], "Missing__c", 1),
            FieldWrite("salesforce", "User", user, "Won_MTD__c", 12000.0),
        ]
        results = await h.connector.sink.write(writes)
        assert [r.write for r in results] == writes
        assert [(r.ok, r.retriable) for r in results] == [
            (True, False),
            (True, False),
            (False, False),
            (False, True),
            (False, False),
            (False, False),
            (True, False),
        ]
        assert results[2].reason.startswith("ENTITY_IS_DELETED")
        assert results[3].reason.startswith("UNABLE_TO_LOCK_ROW")
        assert results[4].reason.startswith("INVALID_CROSS_REFERENCE_KEY")
        assert "Missing__c" in results[5].reason
        assert h.fake.value("Opportunity", ids[0], FIELD) == 0.5
        assert h.fake.value("Opportunity", ids[0], "Deals_Won__c") == 3
        assert h.fake.value("User", user, "Won_MTD__c") == 12000.0
        assert h.fake.write_calls() == 1
        # the locked row is written when tried again
        (again,) = await h.connector.sink.write([writes[3]])
        assert again.ok and h.fake.value("Opportunity", ids[2], FIELD) == 0.2
        assert h.fake.write_headers == ["client=crm-pulse", "client=crm-pulse"]


async def test_limit_exhaustion_and_locked_rows_through_the_writer(tmp_path: Path) -> None:
    async with make_harness(objects=["Opportunity"]) as h:
        ids = h.seed_deals(450)
        writes = [
            FieldWrite("salesforce", "Opportunity", i, FIELD, float(n)) for n, i in enumerate(ids)
        ]
        h.rate_limit(requests=4, retry_after=30)
        h.fake.lock_rows(ids[:7], times=2)
        stats, dead = await write_through_outbox(
            tmp_path / "s.sqlite", "salesforce", h.connector.sink, writes, step=31, rounds=60
        )
        assert stats.rate_limited == 4 and stats.dead == 0 and dead == []
        assert all(h.fake.value("Opportunity", i, FIELD) == float(n) for n, i in enumerate(ids))


async def test_our_own_writes_change_no_canonical_field() -> None:
    async with make_harness(objects=["Opportunity"]) as h:
        ids = h.seed_deals(30)
        events, cursor = await drain(h.connector.source.backfill(None))
        engine = Engine(build_catalog())
        engine.apply_all(events)
        now = int(time.time() * 1000)
        engine.changes(now)
        writes = [FieldWrite("salesforce", "Opportunity", i, FIELD, 0.75) for i in ids]
        assert all(r.ok for r in await h.connector.sink.write(writes))
        assert {h.fake.change_client[("Opportunity", i)] for i in ids} == {"crm-pulse"}
        polled, _ = await drain(h.connector.source.poll(cursor))
        echo = await h.connector.receiver.parse(
            h.request(h.fake.outbound_message("Opportunity", ids))
        )
        first = {e.id: e for e in events}
        for e in [*polled, *echo]:
            assert e.version > first[e.id].version  # really newer, really applied
            assert e.fields == first[e.id].fields
        assert engine.apply_all([*polled, *echo]) >= 30
        assert engine.changes(now) == []


async def test_sink_batches_to_200_records_per_call() -> None:
    async with make_harness(objects=["Opportunity"]) as h:
        ids = h.seed_deals(201)
        writes = [FieldWrite("salesforce", "Opportunity", i, FIELD, 1.0) for i in ids]
        before = h.fake.write_calls()
        results = await h.connector.sink.write(writes)
        assert all(r.ok for r in results) and h.fake.write_calls() - before == 2


# ---------------------------------------------------------------------- provisioning


async def test_provisioning_reports_missing_fields_and_creates_them() -> None:
    async with make_harness() as h:
        prov = h.connector.provisioner
        fields = [
            FieldSpec("Opportunity", FIELD, "Win rate", unit="rate"),
            FieldSpec("User", "Won_MTD__c", "Won this month", unit="money"),
            FieldSpec("Account", "Churned", "Churned", unit="count"),
        ]
        missing = await prov.missing(fields)
        assert [f.name for f in missing] == ["Won_MTD__c", "Churned"]
        lines = await prov.create(missing)
        assert lines[0].startswith("created User.Won_MTD__c (Number, money); no permission set")
        assert "end in __c" in lines[1]
        # with a crm_pulse permission set, provisioning grants it Edit on what it creates
        ps = h.fake.create("PermissionSet", {"Name": "crm_pulse", "Label": "crm-pulse"})
        (line,) = await prov.create([FieldSpec("Account", "Health__c", "Health", unit="rate")])
        assert line == (
            "created Account.Health__c (Number, rate); granted Read and Edit to permission set "
            "crm_pulse"
        )
        (grant,) = h.fake.records["FieldPermissions"].values()
        assert (grant["ParentId"], grant["Field"], grant["PermissionsEdit"]) == (
            ps,
            "Account.Health__c",
            True,
        )
        assert [f.name for f in await prov.missing(fields)] == ["Churned"]
        assert h.fake.schema["User"]["Won_MTD__c"] == "double"
        h.fake.tooling_allowed = False
        (line,) = await prov.create([FieldSpec("Account", "Score__c", "Score")])
        assert "INSUFFICIENT_ACCESS" in line
        assert "Setup > Object Manager > Account > Fields & Relationships > New" in line
        assert "API name Score__c" in line


# ---------------------------------------------------------------------- end to end


async def test_end_to_end_user_fields_equal_replay(tmp_path: Path) -> None:
    from crm_pulse.streams.embedded.runtime import EmbeddedRuntime

    async with make_harness() as h:
        fake = h.fake
        reps = [
            fake.create("User", {"Name": f"Rep {i}", "Username": f"r{i}@acme.test"})
            for i in range(3)
        ]
        fake.add_field("User", "Won_MTD__c")
        fake.add_field("User", "Win_Rate_QTD__c")
        account = fake.create("Account", {"Name": "ACME"})
        fake.add_field("Account", "Won_Revenue_MTD__c", "currency")
        # a CloseDate is noon UTC of its day, and counts once that time has passed
        today = (datetime.now(UTC) - timedelta(hours=12)).date().isoformat()
        for i in range(30):
            stage = "Closed Won" if i % 4 else "Closed Lost"
            fake.create(
                "Opportunity",
                {
                    "Name": f"D{i}",
                    "Amount": 100.0 * (i + 1),
                    "StageName": stage,
                    "CloseDate": today,
                    "OwnerId": reps[i % 3],
                    "Type": "New Customer",
                },
            )
        text = f"""
connectors:
  - salesforce:
      instance_url: {h.server.url}
      session_id: ${{SF_SESSION}}
      ca_cert: {h.server.ca.cert_path if h.server.ca else ""}
      objects: [Opportunity]
writeback:
  - {{metric: won_revenue, window: month, group: owner_id, target: {{connector: salesforce, object: User, field: Won_MTD__c}}}}
  - {{metric: win_rate, window: quarter, group: owner_id, target: {{connector: salesforce, object: User, field: Win_Rate_QTD__c}}}}
  - {{metric: won_revenue, window: month, target: {{connector: salesforce, object: Account, record: "{account}", field: Won_Revenue_MTD__c}}}}
runtime: {{state_path: "{tmp_path / "s.sqlite"}", debounce: 0s}}
"""
        deployment = load_config_text(text, env={"SF_SESSION": SESSION})
        rt = EmbeddedRuntime(deployment)
        await rt.pollers["salesforce"].backfill()
        await rt.consume_all()
        await rt.tick()
        await rt.flush_writes()
        now = int(time.time() * 1000)
        engine = Engine(deployment.catalog(), windows=deployment.window_specs())
        rows = rt.db.call(lambda: [r[0] for r in rt.db.conn.execute("SELECT body FROM events")])
        engine.apply_all(Event.model_validate_json(r) for r in rows)
        gm = time.gmtime()
        month, quarter = time.strftime("%Y-%m", gm), f"{gm.tm_year}-Q{(gm.tm_mon - 1) // 3 + 1}"
        want = {(r.metric, r.window.label, r.group): r.value for r in engine.report(now)}
        for rep in reps:
            assert fake.value("User", rep, "Won_MTD__c") == pytest.approx(
                float(want[("won_revenue", month, ("owner_id", rep))])
            )
            assert fake.value("User", rep, "Win_Rate_QTD__c") == pytest.approx(
                float(want[("win_rate", quarter, ("owner_id", rep))]), abs=1e-6
            )
        assert fake.value("Account", account, "Won_Revenue_MTD__c") == pytest.approx(
            float(want[("won_revenue", month, ())])
        )
        assert set(fake.write_headers) == {"client=crm-pulse"}
        # our writes bumped SystemModstamp: a new poll reads them back and writes nothing
        calls = fake.write_calls()
        await rt.pollers["salesforce"].poll_once()
        await rt.consume_all()
        await rt.tick()
        await rt.flush_writes()
        assert fake.write_calls() == calls
        await rt.close()


def test_sf_time_is_salesforce_format() -> None:
    assert sf_time(1767225600123) == "2026-01-01T00:00:00.123+0000"


async def test_the_fake_seeded_from_canonical_events_reads_back_the_same() -> None:
    def ev(obj: str, rid: str, version: int, op: str = "upsert", **fields: Any) -> Event:
        return Event(source="demo", object=obj, id=rid, op=op, version=version, fields=fields)

    events = [
        ev(
            "account",
            "a1",
            10,
            owner_id="u1",
            domain="acme.test",
            created_at="2026-01-01T09:00:00Z",
        ),
        ev(
            "deal",
            "d1",
            20,
            account_id="a1",
            owner_id="u1",
            stage="Negotiation",
            stage_entered_at="2026-01-05T10:00:00Z",
            status="open",
            type="new",
            amount="1200.5",
            created_at="2026-01-02T09:00:00Z",
            closed_at=None,
        ),
        ev(
            "deal",
            "d1",
            30,
            account_id="a1",
            owner_id="u1",
            stage="Closed Won",
            stage_entered_at="2026-01-20T16:30:00Z",
            status="won",
            type="upsell",
            amount="1300",
            created_at="2026-01-02T09:00:00Z",
            closed_at="2026-01-20T16:30:00Z",
        ),
        ev(
            "deal",
            "d2",
            40,
            owner_id="u2",
            status="lost",
            type="renewal",
            amount="10",
            created_at="2026-01-03T09:00:00Z",
            closed_at="2026-02-01T08:00:00Z",
        ),
        ev("deal", "d3", 45, op="delete"),
        ev(
            "contact",
            "c1",
            50,
            account_id="a1",
            owner_id="u1",
            email=None,
            lifecycle="lead",
            created_at="2026-01-04T09:00:00Z",
            converted_at="2026-01-09T12:00:00Z",
        ),
        ev(
            "contact",
            "c2",
            51,
            owner_id="u2",
            email="y@b.test",
            lifecycle="lead",
            created_at="2026-01-04T09:00:00Z",
            converted_at=None,
            account_id=None,
        ),
        ev(
            "contact",
            "c3",
            52,
            owner_id="u2",
            email="z@b.test",
            lifecycle="other",
            created_at="2026-01-04T09:00:00Z",
            account_id="a1",
        ),
        ev(
            "ticket",
            "t1",
            60,
            account_id="a1",
            owner_id="u2",
            status="closed",
            created_at="2026-01-06T09:00:00Z",
            closed_at="2026-01-07T10:00:00Z",
        ),
        ev(
            "activity",
            "m1",
            70,
            owner_id="u1",
            account_id="a1",
            type="meeting",
            occurred_at="2026-01-08T15:00:00Z",
        ),
        ev("activity", "k1", 80, owner_id="u2", type="call", occurred_at="2026-01-08T12:00:00Z"),
        ev(
            "quota",
            "q1",
            90,
            owner_id="u1",
            period="month",
            period_start="2026-01-01",
            amount="5000",
        ),
    ]
    fake = FakeSalesforce(session_id=SESSION, organization_id=ORG_ID)
    async with make_harness(fake=fake, forecasting_quotas=True) as h:
        ids = fake.seed_canonical(events)
        assert ("deal", "d3") in ids and fake.value(
            "Opportunity", ids[("deal", "d3")], "IsDeleted"
        ) is True
        got, _ = await drain(h.connector.source.backfill(None))
        back = by_id([e for e in got if e.op == "upsert"])
        for original in events:
            if original.op == "delete" or original.version != max(
                e.version for e in events if e.id == original.id
            ):
                continue
            event = back[ids[(original.object, original.id)]]
            assert event.object == original.object
            assert event.version == original.version
            for name, value in original.fields.items():
                have = event.fields.get(name)
                if name.endswith("_id") and value is not None:
                    want = ids.get((name.removesuffix("_id"), value))
                    if name == "owner_id":
                        assert fake.value("User", have, "Name") == f"Owner {value}"
                        continue
                    assert have == want, (original.id, name)
                elif value is None:
                    assert have is None, (original.id, name)
                elif (
                    (name == "closed_at" and original.object == "deal")
                    or name == "converted_at"
                    or (name == "occurred_at" and original.fields.get("type") != "meeting")
                ):  # Salesforce dates: noon UTC of that day
                    assert have == f"{value[:10]}T12:00:00.000Z", (original.id, name)
                elif name == "amount":
                    assert event.values["amount"] == original.values["amount"]
                elif name.endswith("_at"):
                    assert have == value.replace("Z", ".000Z"), (original.id, name)
                elif name == "period_start":
                    assert str(have) == value
                else:
                    assert have == value, (original.id, name)


async def test_server_errors_are_retried_for_reads_and_a_broken_query_resumes() -> None:
    from crm_pulse.errors import RetriableError

    async with make_harness(objects=["Opportunity"]) as h:
        waits: list[float] = []

        async def no_sleep(seconds: float) -> None:
            waits.append(seconds)

        h.connector.client.sleep = no_sleep
        ids = h.seed_deals(1000)
        h.fake.fail(2)
        assert await h.connector.provisioner.missing([FieldSpec("Opportunity", FIELD, "W")]) == []
        assert len(waits) == 2
        # a query that breaks after its first page is not retried inside: it resumes
        got: list[str] = []
        cursor: Cursor | None = None
        h.connector.source.chunk = 200
        with pytest.raises(RetriableError):
            async for page in h.connector.source.backfill(None):
                got.extend(e.id for e in page.events)
                cursor = page.cursor
                if len(got) == 200:
                    # the deleted rows' queryAll goes beside the scan: once it has reached the
                    # org, the next request the source makes is a page of the scan, and fails
                    for _ in range(500):
                        if any("/queryAll" in p for _, p in h.fake.requests_seen):
                            break
                        await asyncio.sleep(0.01)
                    h.fake.fail(1)
        # pages are read ahead, so the fault meets whichever page was asked for next (the
        # one ahead may already have been on the wire): some whole pages, never all five
        assert len(got) in (200, 400)
        rest, _ = await drain(h.connector.source.backfill(cursor))
        assert sorted(got + [e.id for e in rest]) == sorted(ids)
        # a write is never retried by the client: the outbox owns write retries
        h.fake.fail(1)
        with pytest.raises(RetriableError):
            await h.connector.sink.write(
                [FieldWrite("salesforce", "Opportunity", ids[0], FIELD, 1)]
            )
        assert h.fake.value("Opportunity", ids[0], FIELD) is None


async def test_provision_command_and_the_entry_point(tmp_path: Path) -> None:
    import io

    from crm_pulse.connectors.registry import connector_class
    from crm_pulse.streams.embedded.commands import provision

    assert connector_class("salesforce") is SalesforceConnector
    async with make_harness() as h:
        h.fake.create("PermissionSet", {"Name": "crm_pulse", "Label": "crm-pulse"})
        text = f"""
connectors:
  - salesforce:
      instance_url: {h.server.url}
      session_id: ${{SF_SESSION}}
      ca_cert: {h.server.ca.cert_path if h.server.ca else ""}
writeback:
  - {{metric: win_rate, window: quarter, group: owner_id, target: {{connector: salesforce, object: User, field: Win_Rate_QTD__c}}}}
  - {{metric: won_revenue, window: month, target: {{connector: salesforce, object: Opportunity, record: "006000000000001AAA", field: {FIELD}}}}}
runtime: {{state_path: "{tmp_path / "s.sqlite"}"}}
"""
        deployment = load_config_text(text, env={"SF_SESSION": SESSION})
        out = io.StringIO()
        assert await provision(deployment, out, dry_run=True) == 1
        assert "salesforce: User.Win_Rate_QTD__c (rate) missing" in out.getvalue()
        assert f"salesforce: Opportunity.{FIELD} (money) exists" in out.getvalue()
        out = io.StringIO()
        await provision(deployment, out, dry_run=False)
        assert (
            "salesforce: created User.Win_Rate_QTD__c (Number, rate); granted Read and Edit to "
            "permission set crm_pulse"
        ) in out.getvalue()
        assert await provision(deployment, io.StringIO(), dry_run=True) == 0


def test_mapping_names_must_be_api_names() -> None:
    from crm_pulse.connectors.salesforce.mapping import SalesforceMapper
    from crm_pulse.connectors.salesforce.settings import SalesforceMapping
    from crm_pulse.errors import ConfigError

    bad = SalesforceMapping.model_validate(
        {"fields": {"deal": {"amount": "Amount FROM User --"}}, "survey_object": "S__c"}
    )
    with pytest.raises(ConfigError) as info:
        SalesforceMapper(bad, "salesforce", objects=["Opportunity"])
    assert [p.path for p in info.value.problems] == ["mapping.fields.deal.amount"]


async def test_a_large_first_backfill_runs_as_a_bulk_api_job() -> None:
    async with make_harness(objects=["Opportunity"]) as h:
        ids = h.seed_deals(2500)
        for rid in ids[::7]:  # nulls and closed deals come through CSV as well
            h.fake.update("Opportunity", rid, {"Type": None, "StageName": "Closed Won"})
        rest, rest_cursor = await drain(h.connector.source.backfill(None))
        source, client = h.connector.source, h.connector.client
        source.bulk_threshold, client.bulk_page, client.bulk_wait = 1000, 1000, 0
        source.chunk = PAGE  # one query page a step
        calls, seen = h.fake.api_used, len(h.fake.requests_seen)
        bulk, cursor = await drain(source.backfill(None))
        assert len(h.fake.bulk_jobs) == 1
        # the first REST page is asked for beside the COUNT(), and dropped unread when the
        # count calls for the Bulk API: at most that one page, never the rest of the query
        queries = [
            p for _, p in list(h.fake.requests_seen)[seen:] if re.search(r"/v[0-9.]+/query\b", p)
        ]
        dropped = len(queries) - 1
        assert 0 <= dropped <= 1
        # count, job, 2 status checks (InProgress, then JobComplete), 3 result pages, deletes
        assert h.fake.api_used - calls == 8 + dropped
        (state,) = h.fake.bulk_states.values()
        assert state["state"] == "JobComplete" and state["checks"] == 2
        assert {e.id: (e.version, e.fields) for e in bulk} == {
            e.id: (e.version, e.fields) for e in rest
        }
        assert cursor is not None and rest_cursor is not None
        assert cursor["Opportunity"] == rest_cursor["Opportunity"]
        h.touch(ids[3])
        polled, _ = await drain(source.poll(cursor))
        assert ids[3] in {e.id for e in polled}
        # a small object, or a backfill that resumes, stays on the REST query API
        _, _ = await drain(source.backfill(cursor))
        assert len(h.fake.bulk_jobs) == 1


async def test_an_org_without_chatter_still_reads_and_attributes_our_writes_to_the_api_user() -> (
    None
):
    """chatter/users/me says which user crm-pulse writes as; an org with Chatter turned off
    refuses it: a warning, the read goes on, and the API user's changes are then mapped."""
    async with make_harness(objects=["Opportunity"]) as h:
        h.fake.chatter = False
        (deal,) = h.seed_deals(1)
        events, _ = await drain(h.connector.source.backfill(None))
        (event,) = [e for e in events if e.id == deal]
        assert event.fields["modified_by"] == h.fake.api_user_id


async def test_the_count_the_api_user_and_the_deleted_rows_are_read_beside_the_scan() -> None:
    """A first backfill's extra calls (chatter/users/me, COUNT(), the queryAll of deleted rows)
    are in flight together with the first page, not one round trip each before or after the
    scan; the pages still come out as before: the scan's, then the deletes, the cursor last."""
    async with make_harness(objects=["Opportunity"]) as h:
        ids = h.seed_deals(3 * PAGE)
        h.delete(ids[0])
        h.connector.source.chunk = PAGE
        # no clock: every answer is held until four requests are in flight together (the API
        # user, the COUNT(), the deleted rows' queryAll and the first page); made one after
        # another, the first answer waits for calls that never come and the hold times out
        held = h.server.hold(4)
        pages = [page async for page in h.connector.source.backfill(None)]
        assert held.met and not held.timed_out, held.arrived
        kinds = [{e.op for e in page.events} for page in pages if page.events]
        assert kinds == [{"upsert"}] * 3 + [{"delete"}]
        assert [e.id for e in pages[-2].events] == [ids[0]]
        assert {e.id for p in pages[:3] for e in p.events} == set(ids[1:])
        state = pages[-1].cursor["Opportunity"]
        assert state["deleted_t"] == pages[-2].events[0].version
        assert state["t"] == max(e.version for p in pages[:3] for e in p.events)
