"""Salesforce specifics against the fake org over HTTPS with the real simple-salesforce."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from crm_pulse.config import load_config_text
from crm_pulse.connectors.protocols import FieldSpec, FieldWrite, WebhookRequest
from crm_pulse.connectors.salesforce.webhooks import ACK
from crm_pulse.errors import DataError, FatalError, RateLimited, Unauthorized
from crm_pulse.metrics import Engine, build_catalog
from crm_pulse.metrics.events import Event
from crm_pulse.streams.runtime import EmbeddedRuntime

from .harness import FIELD, SESSION, make_harness


async def drain(pages: Any) -> tuple[list[Event], Any]:
    events, cursor = [], None
    async for page in pages:
        events.extend(page.events)
        cursor = page.cursor
    return events, cursor


async def test_mapping_of_opportunities_and_cases() -> None:
    async with make_harness() as h:
        won = h.fake.create(
            "Opportunity",
            {
                "Amount": 5000.0,
                "StageName": "Closed Won",
                "IsClosed": True,
                "IsWon": True,
                "CloseDate": "2026-11-02",
                "Type": "Existing Customer - Upgrade",
                "OwnerId": "005A",
                "AccountId": "001A",
                "LastStageChangeDate": "2026-11-01T10:00:00.000+0000",
            },
        )
        lost = h.fake.create(
            "Opportunity",
            {
                "Amount": 10.0,
                "StageName": "Closed Lost",
                "IsClosed": True,
                "IsWon": False,
                "CloseDate": "2026-11-03",
                "Type": "Renewal",
            },
        )
        case = h.fake.create(
            "Case",
            {"IsClosed": True, "ClosedDate": "2026-11-04T08:00:00.000+0000", "OwnerId": "005B"},
        )
        events, _ = await drain(h.connector.source.backfill(None))
        by_id = {e.id: e for e in events}
        w = by_id[won].fields
        assert (w["status"], w["type"], w["amount"], w["owner_id"], w["account_id"]) == (
            "won",
            "upsell",
            5000.0,
            "005A",
            "001A",
        )
        assert (
            w["closed_at"] == "2026-11-02T00:00:00.000Z"
            and w["stage_entered_at"] == "2026-11-01T10:00:00.000Z"
        )
        assert (by_id[lost].fields["status"], by_id[lost].fields["type"]) == ("lost", "renewal")
        assert by_id[case].object == "ticket" and by_id[case].fields["status"] == "closed"


async def test_deletes_and_undeletes() -> None:
    async with make_harness() as h:
        (a,) = h.seed_deals(1)
        _, cursor = await drain(h.connector.source.backfill(None))
        h.fake.delete("Opportunity", a)
        events, cursor = await drain(h.connector.source.poll(cursor))
        deleted = [e for e in events if e.id == a]
        assert [e.op for e in deleted][-1] == "delete"
        h.fake.undelete("Opportunity", a)
        events, _ = await drain(h.connector.source.poll(cursor))
        back = [e for e in events if e.id == a and e.op == "upsert"]
        assert back and back[-1].version > deleted[-1].version  # the record returns


async def test_outbound_messages_auth_ack_repeats_and_reordering() -> None:
    async with make_harness() as h:
        receiver = h.connector.receiver
        (a, b) = h.seed_deals(2)
        genuine = h.signed_webhook(a)
        receiver.verify(genuine)
        assert receiver.ack_response(genuine) == ("text/xml; charset=utf-8", ACK)
        (event,) = await receiver.parse(genuine)
        assert event.id == a
        with pytest.raises(Unauthorized, match="wrong token"):
            receiver.verify(h.forged_webhook(a))
        with pytest.raises(Unauthorized, match="no token"):
            receiver.verify(
                WebhookRequest("POST", f"{h.server.url}/webhooks/salesforce", {}, genuine.body, 0)
            )
        other = WebhookRequest(
            "POST",
            genuine.url,
            {},
            h.fake.outbound_message("Opportunity", [a], org_id="00D999999999999AAA"),
            0,
        )
        with pytest.raises(Unauthorized, match="another organization"):
            receiver.verify(other)
        with pytest.raises(DataError):
            receiver.verify(WebhookRequest("POST", genuine.url, {}, b"<not-soap/>", 0))
        # repeated and reordered messages: the engine ends with the newest state
        old = h.signed_webhook(b)
        h.touch(b)
        new = h.signed_webhook(b)
        engine = Engine(build_catalog())
        for request in (new, old, new):
            engine.apply_all(await receiver.parse(request))
        report = {
            (r.metric, r.window.label): r.value
            for r in engine.report(int(time.time() * 1000))
            if r.group == ()
        }
        assert float(report[("open_pipeline_value", "current")]) == pytest.approx(
            h.fake.value("Opportunity", b, "Amount")
        )
        # a deleted record announced: a delete
        h.fake.delete("Opportunity", a)
        (gone,) = await receiver.parse(genuine)
        assert (gone.id, gone.op) == (a, "delete")


async def test_collections_partial_failures_and_call_options() -> None:
    async with make_harness() as h:
        ids = h.seed_deals(4)
        h.fake.lock(ids[1])
        h.fake.delete("Opportunity", ids[2])
        writes = [FieldWrite("salesforce", "Opportunity", i, FIELD, 0.25) for i in ids]
        writes.append(FieldWrite("salesforce", "Opportunity", ids[3], "Nope__c", 1.0))
        results = await h.connector.sink.write(writes)
        assert [r.ok for r in results] == [True, False, False, False, False]
        assert results[1].retriable and "UNABLE_TO_LOCK_ROW" in results[1].reason
        assert not results[2].retriable and "ENTITY_IS_DELETED" in results[2].reason
        assert "INVALID_FIELD" in results[4].reason and not results[4].retriable
        patch = [headers for method, path, headers in h.fake.calls if method == "PATCH"]
        assert patch and all(hd.get("Sforce-Call-Options") == "client=crm-pulse" for hd in patch)
        assert h.fake.value("Opportunity", ids[0], FIELD) == 0.25
        # retried later, the lock is gone
        (again,) = await h.connector.sink.write([writes[1]])
        assert again.ok


async def test_daily_limit_pauses_instead_of_failing() -> None:
    async with make_harness() as h:
        h.seed_deals(1)
        h.fake.daily_limit = h.fake.used  # the org's daily requests are used up
        with pytest.raises(RateLimited) as info:
            await drain(h.connector.source.poll(None))
        assert info.value.retry_after and info.value.retry_after >= 60
    async with make_harness(budget_share=0.002, objects=["Opportunity"]) as h:
        h.fake.daily_limit = 1000
        await drain(h.connector.source.poll(None))  # learns the limit from Sforce-Limit-Info
        with pytest.raises(RateLimited, match="share of the daily API limit"):
            await drain(h.connector.source.poll(None))


async def test_a_mapped_field_missing_in_the_org_is_a_clear_fatal_error() -> None:
    async with make_harness(mapping={"fields": {"deal": {"amount": "Net_Amount__c"}}}) as h:
        with pytest.raises(FatalError, match="No such column 'Net_Amount__c'"):
            await drain(h.connector.source.backfill(None))


async def test_provisioning_says_what_is_missing_and_creates_it() -> None:
    async with make_harness() as h:
        fields = [
            FieldSpec("Opportunity", FIELD, "Win rate", unit="rate"),
            FieldSpec("User", "Quota_Attainment__c", "Quota attainment", unit="rate"),
        ]
        missing = await h.connector.provisioner.missing(fields)
        assert [(f.object, f.name) for f in missing] == [("User", "Quota_Attainment__c")]
        (line,) = await h.connector.provisioner.create(missing)
        assert (
            line.startswith("created User.Quota_Attainment__c (Percent)")
            and "field-level security" in line
        )
        assert await h.connector.provisioner.missing(fields) == []


async def test_connected_app_login() -> None:
    async with make_harness() as h:
        from crm_pulse.config.models import SalesforceSettings
        from crm_pulse.connectors.salesforce import SalesforceConnector

        base = h.connector.client.settings
        settings = SalesforceSettings.model_validate(
            {
                "instance_url": str(base.instance_url),
                "client_id": "fake-client",
                "client_secret": "fake-secret",
                "ca_cert": str(base.ca_cert),
                "objects": ["Opportunity"],
            }
        )
        connector = SalesforceConnector("salesforce", settings)
        h.seed_deals(2)
        events, _ = await drain(connector.source.backfill(None))
        assert len([e for e in events if e.op == "upsert"]) == 2
        bad = SalesforceSettings.model_validate(
            {
                "instance_url": str(base.instance_url),
                "client_id": "fake-client",
                "client_secret": "wrong",
                "ca_cert": str(base.ca_cert),
                "objects": ["Opportunity"],
            }
        )
        with pytest.raises(FatalError, match="invalid_client"):
            await drain(SalesforceConnector("salesforce", bad).source.backfill(None))
        assert SESSION not in str(settings)


async def test_end_to_end_fields_in_salesforce_equal_replay(tmp_path: Path) -> None:
    async with make_harness() as h:
        h.fake.add_field("Account", "Won_Revenue_MTD__c", "currency")
        h.fake.add_field("User", "Win_Rate_QTD__c", "percent")
        account = h.fake.create("Account", {"Name": "ACME"})
        users = [h.fake.create("User", {"Name": f"Rep {i}"}) for i in range(3)]
        for i in range(30):
            closed = i % 4 != 0
            h.fake.create(
                "Opportunity",
                {
                    "Amount": 100.0 * (i + 1),
                    "StageName": "Closed Won" if i % 3 else "Closed Lost",
                    "IsClosed": closed,
                    "IsWon": closed and i % 3 != 0,
                    "CloseDate": time.strftime("%Y-%m-%d", time.gmtime()),
                    "OwnerId": users[i % 3],
                    "Type": "New Customer",
                },
            )
        text = f"""
connectors:
  - salesforce: {{instance_url: "{h.server.url}", session_id: "${{SF_SESSION}}", ca_cert: "{h.server.ca.cert_path if h.server.ca else ""}", objects: [Account, Opportunity]}}
writeback:
  - {{metric: won_revenue, window: month, target: {{connector: salesforce, object: Account, record: "{account}", field: Won_Revenue_MTD__c}}}}
  - {{metric: win_rate, window: quarter, group: owner_id, target: {{connector: salesforce, object: User, field: Win_Rate_QTD__c}}}}
runtime: {{state_path: "{tmp_path / "s.sqlite"}", debounce: 0s}}
"""
        deployment = load_config_text(text, env={"SF_SESSION": SESSION})
        rt = EmbeddedRuntime(deployment)
        await rt.pollers["salesforce"].backfill()
        await rt.consume_all()
        await rt.tick()
        await rt.flush_writes()
        rows = rt.db.call(lambda: [r[0] for r in rt.db.conn.execute("SELECT body FROM events")])
        engine = Engine(deployment.catalog(), windows=deployment.window_specs())
        engine.apply_all(Event.model_validate_json(r) for r in rows)
        now = int(time.time() * 1000)
        want = {(r.metric, r.window.label, r.group): r.value for r in engine.report(now)}
        month, quarter = (
            time.strftime("%Y-%m", time.gmtime()),
            f"{time.gmtime().tm_year}-Q{(time.gmtime().tm_mon - 1) // 3 + 1}",
        )
        assert h.fake.value("Account", account, "Won_Revenue_MTD__c") == pytest.approx(
            float(want[("won_revenue", month, ())])
        )
        for user in users:
            assert h.fake.value("User", user, "Win_Rate_QTD__c") == pytest.approx(
                float(want[("win_rate", quarter, ("owner_id", user))]), abs=1e-6
            )
        calls = h.fake.write_calls()
        await rt.pollers["salesforce"].poll_once()  # our own writes come back as modifications
        await rt.consume_all()
        await rt.tick()
        await rt.flush_writes()
        assert h.fake.write_calls() == calls
        await rt.close()
