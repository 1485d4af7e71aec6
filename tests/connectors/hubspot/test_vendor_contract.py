"""The HubSpot connector against what HubSpot documents (docs/connect-hubspot.md, "Facts"):
pipeline stage metadata, rate-limit answers, search filter limits, association paging, and
the documented failures produced on demand by the simulator."""

from __future__ import annotations

import pytest

from crm_pulse.connectors.hubspot.errors import DAILY_WAIT, Refused
from crm_pulse.connectors.hubspot.mapping import deal_stage_status, ticket_stage_status
from crm_pulse.errors import RateLimited, RetriableError

from ..helpers import drain
from .harness import make_harness


@pytest.mark.parametrize(
    ("metadata", "status"),
    [
        ({"probability": "1.0", "isClosed": "true"}, "won"),
        ({"probability": "0.0", "isClosed": "true"}, "lost"),
        ({"probability": "0.4", "isClosed": "false"}, "open"),
        ({"probability": "1.0"}, "won"),  # isClosed absent: probability alone decides
        ({"probability": "0.0"}, "lost"),
        ({"probability": 0.6}, "open"),
        ({"isClosed": "true"}, "lost"),  # no probability: isClosed is the fallback
        ({}, "open"),
    ],
)
def test_deal_stage_status_follows_the_documented_probability(
    metadata: dict[str, object], status: str
) -> None:
    assert deal_stage_status(metadata) == status


@pytest.mark.parametrize(
    ("metadata", "status"),
    [
        ({"ticketState": "CLOSED"}, "closed"),
        ({"ticketState": "OPEN"}, "open"),
        ({"ticketState": "OPEN", "isClosed": "true"}, "open"),  # ticketState wins
        ({"isClosed": "true"}, "closed"),  # the fallback
        ({}, "open"),
    ],
)
def test_ticket_stage_status_follows_ticket_state(metadata: dict[str, object], status: str) -> None:
    assert ticket_stage_status(metadata) == status


async def test_tickets_in_a_closed_stage_are_closed_with_ticket_state_only() -> None:
    async with make_harness(objects=["tickets"]) as h:
        # the simulator's ticket stages carry ticketState only, as HubSpot's do
        (pipeline,) = h.fake.pipelines["tickets"]
        assert all(set(meta) == {"ticketState"} for _, _, meta in pipeline["stages"])
        closed = h.fake.create(
            "tickets",
            {"hs_pipeline": "0", "hs_pipeline_stage": "4", "closed_date": "1767225600000"},
        )
        open_ = h.fake.create("tickets", {"hs_pipeline": "0", "hs_pipeline_stage": "1"})
        events, _ = await drain(h.connector.source.backfill(None))
        status = {e.id: e.fields["status"] for e in events if e.object == "ticket"}
        assert status == {closed: "closed", open_: "open"}


async def test_a_new_closed_won_stage_is_read_from_its_probability() -> None:
    async with make_harness(objects=["deals"]) as h:
        h.fake.add_stage("signed", "Signed", closed=True, won=True)
        (deal,) = h.seed_deals(1)
        h.fake.update("deals", deal, {"dealstage": "signed"})
        events, _ = await drain(h.connector.source.backfill(None))
        assert [e.fields["status"] for e in events if e.id == deal] == ["won"]


async def test_a_daily_limit_429_pauses_for_an_hour() -> None:
    async with make_harness() as h:
        h.fake.exhaust_daily()
        with pytest.raises(RateLimited) as limited:
            await h.connector.client.pipelines("deals")
        assert limited.value.retry_after == DAILY_WAIT
        assert "RATE_LIMIT" in str(limited.value) and "DAILY" in str(limited.value)
        h.fake.reset_daily()
        assert await h.connector.client.pipelines("deals")


async def test_a_ten_secondly_429_names_its_policy_and_is_waited_out() -> None:
    async with make_harness() as h:
        waits: list[float] = []

        async def sleep(seconds: float) -> None:
            waits.append(seconds)

        h.connector.client.sleep = sleep
        h.fake.rate_limit(1, retry_after=2)
        assert await h.connector.client.pipelines("deals")
        assert waits == [2.0]
        h.fake.rate_limit(1, retry_after=2)
        with pytest.raises(RateLimited, match="TEN_SECONDLY_ROLLING"):
            await h.connector.client.batch_update("deals", [])


async def test_search_filter_limits_are_hubspots() -> None:
    async with make_harness() as h:

        def body(groups: int, filters: int) -> dict[str, object]:
            one = {"propertyName": "amount", "operator": "HAS_PROPERTY"}
            return {"filterGroups": [{"filters": [one] * filters}] * groups, "limit": 1}

        for groups, filters in ((5, 5), (3, 8), (1, 10)):  # at most 25 filters in all
            await h.connector.client.search("deals", body(groups, filters))
        for groups, filters in ((6, 1), (1, 11), (3, 9)):
            with pytest.raises(Refused) as refused:
                await h.connector.client.search("deals", body(groups, filters))
            assert refused.value.status == 400


async def test_associations_past_the_first_page_are_followed() -> None:
    async with make_harness() as h:
        call = h.fake.create("calls", {"hs_timestamp": "2026-01-01T00:00:00Z"})
        companies = [h.fake.create("companies", {"name": f"c{i}"}) for i in range(1203)]
        for company in companies:
            h.fake.associate("calls", call, "companies", company)
        found = await h.connector.client.associated("calls", "companies", [call])
        assert sorted(found[call], key=int) == companies
        pages = [p for _, p in h.fake.calls if "/associations/companies" in p]
        assert pages == [f"/crm/v4/objects/calls/{call}/associations/companies"] * 2


async def test_5xx_and_slow_answers_are_retried_then_reported() -> None:
    async with make_harness(timeout="300ms") as h:
        h.connector.client.sleep = _no_sleep
        h.fake.fail(2, 502)
        assert await h.connector.client.pipelines("deals")
        h.fake.fail(10, 500)
        with pytest.raises(RetriableError, match="500"):
            await h.connector.client.pipelines("deals")
        h.fake.faults.clear()
        h.fake.fail(1, 0, delay=1.0)  # once slower than the client's timeout
        assert await h.connector.client.pipelines("deals")


async def _no_sleep(seconds: float) -> None:
    return None
