"""The Pipedrive connector against what Pipedrive documents (docs/connect-pipedrive.md, "Facts"):
monetary custom fields, paginated field definitions, partial webhooks v2 data, deleted and
archived deals, and the token-based rate limits and their failures."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from crm_pulse.connectors.pipedrive.client import COSTS
from crm_pulse.connectors.pipedrive.errors import DAILY_WAIT
from crm_pulse.connectors.protocols import FieldSpec, FieldWrite, WebhookRequest
from crm_pulse.errors import RateLimited, RetriableError
from crm_pulse.sandbox.pipedrive import BASE_TOKENS, PLANS, FakePipedrive
from crm_pulse.sandbox.server import FakeServer

from ..helpers import drain
from .harness import TOKEN, make_harness


async def test_money_goes_into_a_monetary_field_as_value_and_currency() -> None:
    async with make_harness() as h:
        (line,) = await h.connector.provisioner.create(
            [FieldSpec("deal", "Won revenue", "Won revenue", unit="money")]
        )
        assert "(monetary," in line
        (deal,) = h.seed_deals(1)
        (result,) = await h.connector.sink.write(
            [FieldWrite("pipedrive", "deal", deal, "Won revenue", 1250.5)]
        )
        assert result.ok, result.reason
        # the company's default currency (GET /v1/users/me), in API v2's object form
        assert h.fake.custom_value("deals", deal, "Won revenue") == {
            "value": 1250.5,
            "currency": "EUR",
        }
        # and number fields stay numbers
        (ok,) = await h.connector.sink.write([FieldWrite("pipedrive", "deal", deal, "Win rate", 1)])
        assert ok.ok and h.fake.custom_value("deals", deal, "Win rate") == 1


async def test_the_simulator_refuses_what_api_v2_refuses() -> None:
    async with make_harness() as h:
        money = h.fake.add_field("deals", "Won revenue", "monetary")
        number = next(k for k, f in h.fake.fields["deals"].items() if f["name"] == "Win rate")
        (deal,) = h.seed_deals(1)
        headers = {"x-api-token": TOKEN}
        async with httpx.AsyncClient(base_url=h.server.url, headers=headers) as http:
            for custom in ({money: 12.0}, {money: {"value": "12"}}, {number: "0.5"}):
                answer = await http.patch(f"/api/v2/deals/{deal}", json={"custom_fields": custom})
                assert answer.status_code == 400, custom
            good = {money: {"value": 12.0, "currency": "USD"}, number: 0.5}
            answer = await http.patch(f"/api/v2/deals/{deal}", json={"custom_fields": good})
            assert answer.status_code == 200


async def test_a_configured_currency_is_written_without_asking_pipedrive() -> None:
    async with make_harness(currency="USD") as h:
        h.fake.add_field("deals", "Won revenue", "monetary")
        (deal,) = h.seed_deals(1)
        await h.connector.sink.write([FieldWrite("pipedrive", "deal", deal, "Won revenue", 3)])
        assert h.fake.custom_value("deals", deal, "Won revenue") == {"value": 3, "currency": "USD"}
        assert ("GET", "/v1/users/me") not in h.fake.calls


async def test_field_definitions_are_read_page_after_page() -> None:
    async with make_harness() as h:
        for n in range(620):
            h.fake.add_field("deals", f"Field {n}")
        (deal,) = h.seed_deals(1)
        (result,) = await h.connector.sink.write(
            [FieldWrite("pipedrive", "deal", deal, "Field 619", 7.0)]
        )
        assert result.ok, result.reason
        pages = [p for m, p in h.fake.calls if p == "/api/v2/dealFields"]
        assert len(pages) == 2  # 620 custom + the standard fields: two pages of 500
        assert not any(p.startswith("/v1/dealFields") for _, p in h.fake.calls)


async def test_partial_webhook_data_is_completed_by_reading_the_record() -> None:
    async with make_harness() as h:
        (deal,) = h.seed_deals(1)
        h.fake.update("deals", deal, {"stage_id": 2, "stage_change_time": "2026-11-20 10:00:00"})
        headers, body = h.fake.webhook("change", "deals", deal, previous={"stage_id": 1})
        assert b"stage_change_time" not in body  # only the essential fields, as Pipedrive
        before = len(h.fake.calls)
        (event,) = await h.connector.receiver.parse(WebhookRequest("POST", "u", headers, body, 0))
        assert ("GET", f"/api/v2/deals/{deal}") in h.fake.calls[before:]
        assert event.fields["stage_entered_at"] == "2026-11-20T10:00:00Z"
        assert event.fields["stage"] == "2"


async def test_complete_webhook_data_is_mapped_without_a_read() -> None:
    async with make_harness() as h:
        (deal,) = h.seed_deals(1)
        h.fake.update("deals", deal, {"stage_change_time": "2026-11-20 10:00:00"})
        h.connector.receiver.read_organizations = False
        await h.connector.keys.load("deals")
        headers, body = h.fake.webhook("change", "deals", deal)
        payload = json.loads(body)
        payload["data"] = {k: v for k, v in h.fake.records["deals"][deal].items() if k[0] != "_"}
        before = len(h.fake.calls)
        events = await h.connector.receiver.parse(
            WebhookRequest("POST", "u", headers, json.dumps(payload).encode(), 0)
        )
        assert [e.fields["stage_entered_at"] for e in events] == ["2026-11-20T10:00:00Z"]
        assert h.fake.calls[before:] == []


async def test_a_deal_archived_then_deleted_does_not_escape() -> None:
    async with make_harness() as h:
        kept, doomed = h.seed_deals(2)
        events, cursor = await drain(h.connector.source.backfill(None))
        assert {e.id for e in events if e.object == "deal"} == {kept, doomed}
        h.fake.archive(doomed)
        h.fake.delete("deals", doomed)
        polled, _ = await drain(h.connector.source.poll(cursor))
        deletes = [e.id for e in polled if e.object == "deal" and e.op == "delete"]
        assert deletes == [doomed]  # found in /api/v2/deals/archived?status=deleted


async def test_deleted_deals_are_listed_for_30_days_only() -> None:
    now = [time.time()]
    fake = FakePipedrive(TOKEN, clock=lambda: now[0])
    old, recent = fake.create("deals", {"title": "a"}), fake.create("deals", {"title": "b"})
    fake.delete("deals", old)
    now[0] += 25 * 86_400
    fake.delete("deals", recent)
    now[0] += 6 * 86_400  # old: deleted 31 days ago, recent: 6 days ago
    with FakeServer(fake.app()) as server:
        async with httpx.AsyncClient(base_url=server.url, headers={"x-api-token": TOKEN}) as c:
            answer = await c.get("/api/v2/deals", params={"status": "deleted"})
    assert [d["id"] for d in answer.json()["data"]] == [int(recent)]


async def test_the_burst_limit_counts_requests_and_the_budget_tokens() -> None:
    fake = FakePipedrive(TOKEN, plan="lite", seats=1)
    assert fake.burst == PLANS["lite"][0] == 20
    assert fake.daily_budget == BASE_TOKENS * 1
    (deal,) = [fake.create("deals", {"title": "x"})]
    with FakeServer(fake.app()) as server:
        async with httpx.AsyncClient(base_url=server.url, headers={"x-api-token": TOKEN}) as c:
            answers = [await c.get(f"/api/v2/deals/{deal}") for _ in range(21)]
    assert [a.status_code for a in answers] == [200] * 20 + [429]
    assert answers[0].headers["x-ratelimit-limit"] == "20"
    assert answers[-1].headers["x-ratelimit-remaining"] == "0"
    assert float(answers[-1].headers["Retry-After"]) > 0
    assert fake.tokens_spent == 20 * COSTS["get"]  # the refused request spent nothing


async def test_an_exhausted_daily_budget_pauses_the_connector() -> None:
    async with make_harness() as h:
        h.fake.exhaust_daily()
        with pytest.raises(RateLimited) as limited:
            await h.connector.client.get("deals", "1")
        assert limited.value.retry_after == DAILY_WAIT
        assert "daily token budget" in str(limited.value)
        # the client stops asking by itself while its view of the budget says 0 ...
        with pytest.raises(RateLimited, match="daily token share"):
            await h.connector.client.get("deals", "1")
        # ... and asks again an hour later (the budget resets at the start of the day)
        h.fake.reset_daily()
        h.connector.client.budget.daily_seen_at -= h.connector.client.budget.recheck
        assert await h.connector.client.get("deals", "1") is None  # no such deal: a 404


async def test_5xx_and_slow_answers_are_retried_then_reported() -> None:
    async with make_harness() as h:
        (deal,) = h.seed_deals(1)
        h.connector.client.sleep = _no_sleep
        h.fake.fail(2, 503)
        assert (await h.connector.client.get("deals", deal) or {})["id"] == int(deal)
        h.fake.fail(10, 500)
        with pytest.raises(RetriableError, match="500"):
            await h.connector.client.get("deals", deal)
        h.fake.faults.clear()
        h.connector.client.http.timeout = httpx.Timeout(0.2)
        h.fake.fail(1, 0, delay=1.0)  # slower than the client's timeout, once
        assert (await h.connector.client.get("deals", deal) or {})["id"] == int(deal)


async def _no_sleep(seconds: float) -> None:
    return None
