"""HubSpot specifics: the 10,000 cap, late indexing, webhooks, 207s, 429 storms, loop safety."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from crm_pulse.config import load_config_text
from crm_pulse.connectors.hubspot.errors import Refused
from crm_pulse.connectors.protocols import FieldSpec, FieldWrite, WebhookRequest
from crm_pulse.errors import DataError, Unauthorized
from crm_pulse.metrics import Engine, build_catalog
from crm_pulse.metrics.events import Event
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime

from ..helpers import drain, write_through_outbox
from .harness import APP_SECRET, FIELD, TOKEN, HubSpotHarness, make_harness


async def test_more_than_10000_changed_records_are_all_read() -> None:
    async with make_harness(objects=["deals"]) as h:
        at = h.fake.now_ms()
        # cheaply, straight into the fake: 10,200 share one instant (a pipeline edit flood),
        # the other 300 follow one per millisecond
        for i in range(10_500):
            h.fake.create(
                "deals",
                {"amount": "1", "dealstage": "closedwon", "pipeline": "default"},
                modified_ms=at + max(0, i - 10_199),
            )
        events, cursor = await drain(h.connector.source.backfill(None))
        ids = [e.id for e in events if e.op == "upsert"]
        assert len(set(ids)) == 10_500
        assert len(ids) == 10_500  # the tie scan skips what the page already brought
        bodies = h.fake.search_bodies
        assert all("after" not in b and b["limit"] <= 200 for b in bodies)  # never past the cap
        assert not any(status == 400 for status in h.fake.statuses)
        last = max(int(i) for i in ids)
        assert cursor["deals"]["t"] == at + 300 and cursor["deals"]["id"] == str(last)
        # a poll from that cursor re-reads only the lookback window, and the flood again
        # only if it is inside it: here it is (same instant), and still nothing is lost
        polled, _ = await drain(h.connector.source.poll(cursor))
        assert {e.id for e in polled} == set(ids)


async def test_the_search_api_refuses_paging_past_10000_results() -> None:
    async with make_harness(objects=["deals"]) as h:
        body = {"limit": 200, "after": "10000", "filterGroups": []}
        with pytest.raises(Refused) as info:
            await h.connector.client.search("deals", body)
        assert info.value.status == 400 and "10000" in str(info.value)


async def test_lookback_catches_records_search_indexed_late() -> None:
    async with make_harness(objects=["deals"]) as h:
        _, cursor = await drain(h.connector.source.backfill(None))
        now = [time.time()]
        h.fake.clock = lambda: now[0]  # the simulator's time moves only when the test says so
        h.fake.index_delay_ms = 300
        (early,) = h.seed_deals(1)
        now[0] += 0.35
        (late,) = h.seed_deals(1)  # written now: not searchable for 300 ms
        events, cursor = await drain(h.connector.source.poll(cursor))
        assert {e.id for e in events} == {early}
        now[0] += 0.35
        events, _ = await drain(h.connector.source.poll(cursor))
        assert late in {e.id for e in events}  # the cursor passed it; the lookback did not


async def test_deal_mapping_status_type_stage_and_pipeline_filter() -> None:
    async with make_harness(
        objects=["deals"],
        mapping={
            "deal_stages": {"contractsent": "won"},
            "deal_type": {
                "property": "dealtype",
                "values": {"newbusiness": "new", "renewal": "renewal"},
                "default": "other",
            },
        },
    ) as h:
        won = h.fake.create(
            "deals",
            {
                "amount": "1200.5",
                "dealstage": "closedwon",
                "dealtype": "renewal",
                "hubspot_owner_id": "7",
                "closedate": "2026-11-02T10:00:00.000Z",
                "pipeline": "default",
            },
        )
        lost = h.fake.create(
            "deals",
            {
                "amount": "5",
                "dealstage": "closedlost",
                "dealtype": "weird",
                "pipeline": "default",
                "closedate": "2026-11-03T00:00:00Z",
            },
        )
        forced = h.fake.create(
            "deals", {"amount": "7", "dealstage": "contractsent", "pipeline": "default"}
        )
        events, _ = await drain(h.connector.source.backfill(None))
        by_id = {e.id: e for e in events}
        w = by_id[won].fields
        assert (w["status"], w["type"], w["owner_id"], w["amount"]) == (
            "won",
            "renewal",
            "7",
            "1200.5",
        )
        assert w["closed_at"] == "2026-11-02T10:00:00.000Z" and w["stage"] == "closedwon"
        assert w["stage_entered_at"] is not None
        assert (by_id[lost].fields["status"], by_id[lost].fields["type"]) == ("lost", "other")
        assert by_id[forced].fields["status"] == "won"  # mapping.deal_stages overrides the flags
    async with make_harness(objects=["deals"], mapping={"pipelines": ["enterprise"]}) as h:
        rid = h.fake.create(
            "deals", {"amount": "1", "dealstage": "closedwon", "pipeline": "default"}
        )
        events, _ = await drain(h.connector.source.backfill(None))
        assert [(e.id, e.op) for e in events] == [(rid, "delete")]  # outside the mapped pipelines


def request(
    h: HubSpotHarness, events: list[dict[str, Any]], *, secret: str = APP_SECRET, age_ms: int = 0
) -> WebhookRequest:
    url = f"{h.server.url}/webhooks/hubspot"
    headers, body = h.fake.webhook(
        url, events, secret=secret, timestamp_ms=int(time.time() * 1000) - age_ms
    )
    return WebhookRequest("POST", url, headers, body, int(time.time() * 1000))


async def test_webhooks_valid_forged_stale_duplicated_out_of_order_and_deleted() -> None:
    async with make_harness() as h:
        receiver = h.connector.receiver
        (a, b) = h.seed_deals(2)
        ev_a = h.fake.change_event("deals", a, propertyName="amount")
        genuine = request(h, [ev_a, ev_a, h.fake.change_event("deals", b)])  # a twice
        receiver.verify(genuine)
        events = await receiver.parse(genuine)
        assert sorted(e.id for e in events) == sorted([a, b])  # duplicate fetched once
        with pytest.raises(Unauthorized, match="does not match"):
            receiver.verify(request(h, [ev_a], secret="forged"))
        with pytest.raises(Unauthorized, match="old"):
            receiver.verify(request(h, [ev_a], age_ms=6 * 60 * 1000))
        tampered = request(h, [ev_a])
        tampered = WebhookRequest(
            "POST",
            tampered.url,
            tampered.headers,
            tampered.body.replace(b"deal", b"DEAL"),
            tampered.received_at_ms,
        )
        with pytest.raises(Unauthorized):
            receiver.verify(tampered)
        with pytest.raises(Unauthorized, match="missing"):
            receiver.verify(WebhookRequest("POST", genuine.url, {}, genuine.body, 0))
        # an older notification arriving after a newer one: the fetched record is current anyway
        h.touch(a)
        late = request(h, [ev_a])
        (event,) = await receiver.parse(late)
        first_a = next(e for e in events if e.id == a)
        assert event.id == a and event.version > first_a.version
        assert event.fields["amount"] != first_a.fields["amount"]
        # deletion
        h.fake.archive("deals", b)
        gone = request(h, [h.fake.change_event("deals", b, kind="deletion")])
        receiver.verify(gone)
        (deleted,) = await receiver.parse(gone)
        assert (deleted.id, deleted.op) == (b, "delete")


async def test_webhook_uri_is_verified_with_hubspot_decoding() -> None:
    async with make_harness() as h:
        (a,) = h.seed_deals(1)
        url = f"{h.server.url}/webhooks/hubspot?portal=4242&from=a%3Ab"
        signed_for = url.replace("%3A", ":")
        headers, body = h.fake.webhook(signed_for, [h.fake.change_event("deals", a)])
        h.connector.receiver.verify(WebhookRequest("POST", url, headers, body, 0))


async def test_malformed_webhook_body_is_a_data_error() -> None:
    async with make_harness() as h:
        url = f"{h.server.url}/webhooks/hubspot"
        from crm_pulse.connectors.hubspot.webhooks import signature_v3

        body = b'{"not": "a list"}'
        ts = str(int(time.time() * 1000))
        headers = {
            "X-HubSpot-Signature-v3": signature_v3(APP_SECRET.encode(), "POST", url, body, ts),
            "X-HubSpot-Request-Timestamp": ts,
        }
        with pytest.raises(DataError, match="JSON array"):
            h.connector.receiver.verify(WebhookRequest("POST", url, headers, body, 0))


async def test_batch_update_207_reports_each_record() -> None:
    async with make_harness() as h:
        ids = h.seed_deals(3)
        writes = [FieldWrite("hubspot", "deals", i, FIELD, 0.5) for i in [*ids, "999999"]]
        results = await h.connector.sink.write(writes)
        assert [r.ok for r in results] == [True, True, True, False]
        assert results[3].retriable is False and "OBJECT_NOT_FOUND" in results[3].reason
        assert h.fake.value("deals", ids[0], FIELD) == "0.5"
        assert h.fake.write_calls() == 1


async def test_a_429_storm_delays_writes_but_loses_none(tmp_path: Path) -> None:
    async with make_harness() as h:
        ids = h.seed_deals(150)
        writes = [FieldWrite("hubspot", "deals", i, FIELD, float(n)) for n, i in enumerate(ids)]
        h.fake.rate_limit(6, retry_after=10)
        stats, dead = await write_through_outbox(
            tmp_path / "s.sqlite", "hubspot", h.connector.sink, writes, step=5, rounds=50
        )
        # a round sends its two calls (100 + 50 writes) at once: six refusals pause three rounds
        assert stats.rate_limited == 3 and stats.dead == 0 and dead == []
        assert all(h.fake.value("deals", i, FIELD) == str(n) for n, i in enumerate(ids))


async def test_own_writes_and_pipeline_edits_change_nothing_canonical() -> None:
    async with make_harness(objects=["deals"]) as h:
        ids = h.seed_deals(300)
        events, cursor = await drain(h.connector.source.backfill(None))
        engine = Engine(build_catalog())
        engine.apply_all(events)
        engine.changes(int(time.time() * 1000))
        # our write comes back as a propertyChange webhook and a modified-date bump
        await h.connector.sink.write([FieldWrite("hubspot", "deals", ids[0], FIELD, 0.9)])
        echo = request(
            h,
            [
                h.fake.change_event(
                    "deals",
                    ids[0],
                    propertyName=FIELD,
                    propertyValue="0.9",
                    changeSource="INTEGRATION",
                )
            ],
        )
        echoed = await h.connector.receiver.parse(echo)
        # ... and a pipeline edit bumps every deal
        assert h.fake.edit_pipeline() == 300
        polled, _ = await drain(h.connector.source.poll(cursor))
        assert len(polled) >= 300
        first = {e.id: e.version for e in events}
        assert all(e.version > first[e.id] for e in polled)  # newer versions: really applied
        assert engine.apply_all([*echoed, *polled]) >= 300
        assert engine.changes(int(time.time() * 1000)) == []


async def test_provisioning_creates_the_group_and_properties_once() -> None:
    async with make_harness() as h:
        prov = h.connector.provisioner
        fields = [
            FieldSpec("deals", FIELD, "Win rate", unit="rate"),
            FieldSpec("companies", "crm_pulse_won", "Won", unit="money"),
        ]
        missing = await prov.missing(fields)
        assert [f.name for f in missing] == ["crm_pulse_won"]
        lines = await prov.create(missing)
        assert lines == [
            "created property group crm_pulse on companies",
            "created companies.crm_pulse_won (money)",
        ]
        assert await prov.missing(fields) == []
        created = h.fake.properties["companies"]["crm_pulse_won"]
        assert created.group == "crm_pulse" and created.extra.get("showCurrencySymbol") is True


async def test_bad_token_is_fatal_and_says_what_to_check() -> None:
    from crm_pulse.errors import FatalError

    async with make_harness() as h:
        h.fake.token = "rotated"
        with pytest.raises(FatalError, match="token and scopes"):
            await drain(h.connector.source.poll(None))
        assert TOKEN not in json.dumps(h.connector.mapper.fields)


async def test_end_to_end_fields_in_hubspot_equal_replay(tmp_path: Path) -> None:
    async with make_harness() as h:
        for i in range(40):
            h.fake.create(
                "deals",
                {
                    "amount": str(100 * (i + 1)),
                    "dealstage": "closedwon" if i % 3 else "closedlost",
                    "pipeline": "default",
                    "hubspot_owner_id": "7",
                    "closedate": time.strftime(
                        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600 * (i + 1))
                    ),
                    "dealtype": "newbusiness",
                },
            )
        company = h.fake.create("companies", {"name": "ACME", "domain": "acme.test"})
        h.fake.add_property("companies", "crm_pulse_won_mtd")
        h.fake.add_property("companies", "crm_pulse_win_rate_mtd")
        text = f"""
connectors:
  - hubspot:
      access_token: ${{HUBSPOT_TOKEN}}
      app_secret: ${{HUBSPOT_APP_SECRET}}
      base_url: {h.server.url}
      ca_cert: {h.server.ca.cert_path if h.server.ca else ""}
      objects: [companies, deals]
writeback:
  - {{metric: won_revenue, window: month, target: {{connector: hubspot, object: companies, record: "{company}", field: crm_pulse_won_mtd}}}}
  - {{metric: win_rate, window: month, target: {{connector: hubspot, object: companies, record: "{company}", field: crm_pulse_win_rate_mtd}}}}
runtime: {{state_path: "{tmp_path / "s.sqlite"}", debounce: 0s}}
"""
        deployment = load_config_text(
            text, env={"HUBSPOT_TOKEN": TOKEN, "HUBSPOT_APP_SECRET": APP_SECRET}
        )
        rt = EmbeddedRuntime(deployment)
        await rt.pollers["hubspot"].backfill()
        await rt.consume_all()
        await rt.tick()
        await rt.flush_writes()
        now = int(time.time() * 1000)
        engine = Engine(deployment.catalog(), windows=deployment.window_specs())
        log = tmp_path / "events.jsonl"
        rows = rt.db.call(lambda: [r[0] for r in rt.db.conn.execute("SELECT body FROM events")])
        log.write_text("\n".join(rows) + "\n")
        engine.apply_all(Event.model_validate_json(r) for r in rows)
        want = {
            (r.metric, r.window.label): r.value
            for r in engine.report(now)
            if r.group == () and r.window.spec.kind == "month"
        }
        month = time.strftime("%Y-%m", time.gmtime())
        assert float(h.fake.value("companies", company, "crm_pulse_won_mtd") or 0) == pytest.approx(
            float(want[("won_revenue", month)])
        )
        assert float(
            h.fake.value("companies", company, "crm_pulse_win_rate_mtd") or 0
        ) == pytest.approx(float(want[("win_rate", month)]), abs=1e-6)
        # nothing changed: a new poll (a modified-date flood) causes no write
        calls = h.fake.write_calls()
        h.fake.edit_pipeline()
        await rt.pollers["hubspot"].poll_once()
        await rt.consume_all()
        await rt.tick()
        await rt.flush_writes()
        assert h.fake.write_calls() == calls
        await rt.close()
