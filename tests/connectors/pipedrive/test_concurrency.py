"""Pipedrive write-back (one PATCH per record) sends a round's PATCHes concurrently, paced by
the burst window: never more requests per rolling two seconds than the plan allows."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import respx

from crm_pulse.connectors.pipedrive.client import PipedriveClient, TokenBudget
from crm_pulse.connectors.pipedrive.settings import PipedriveSettings
from crm_pulse.connectors.protocols import FieldWrite

from .harness import FIELD, make_harness


async def test_patches_go_concurrently_and_never_beyond_the_burst_window() -> None:
    async with make_harness(burst=8) as h:  # 8 requests per rolling 2 s
        ids = h.seed_deals(12)
        sink = h.connector.sink
        assert sink.max_batch >= 12
        writes = [FieldWrite("pipedrive", "deal", i, FIELD, n) for n, i in enumerate(ids)]
        await h.connector.keys.load("deals")  # the account's burst size is known from here on
        held = h.server.hold(2)  # answers wait until two PATCHes are in flight: no clock
        results = await sink.write(writes)
        assert all(r.ok for r in results)
        assert h.server.statuses[429] == 0  # the limit was never exceeded
        assert held.met and not held.timed_out  # concurrent ...
        assert h.server.peak_in_flight <= 8  # ... and bounded by the window
        assert h.fake.write_calls() == 12
        assert all(h.fake.custom_value("deals", i, FIELD) == n for n, i in enumerate(ids))


BASE = "https://acme.pipedrive.test"


@respx.mock
async def test_many_concurrent_requests_queue_for_the_window_and_never_exceed_it() -> None:
    respx.patch(url__regex=rf"{BASE}/api/v2/deals/\d+").mock(
        return_value=httpx.Response(200, json={"success": True, "data": {}})
    )
    now = [100.0]

    async def sleep(seconds: float) -> None:  # a clock that moves only while requests wait
        until = now[0] + seconds
        await asyncio.sleep(0)
        now[0] = max(now[0], until)

    settings = PipedriveSettings.model_validate({"api_token": "tok-123456", "base_url": BASE})
    client = PipedriveClient(settings, sleep=sleep)
    client.budget = TokenBudget(burst=3, clock=lambda: now[0])
    started: list[float] = []
    original = client.http.request

    async def recorded(*args: Any, **kwargs: Any) -> httpx.Response:
        started.append(now[0])
        return await original(*args, **kwargs)

    client.http.request = recorded  # type: ignore[method-assign]
    await asyncio.gather(*(client.patch("deals", str(i), {"title": "x"}) for i in range(100)))
    assert len(started) == 100
    for s in started:  # 3 requests per rolling 2 s at most, however many wait at once
        assert sum(1 for t in started if s <= t < s + 2.0) <= 3
    assert max(started) == pytest.approx(100.0 + 2.0 * 33)  # and no slower than the window
    await client.aclose()


def test_a_request_counts_in_the_window_until_two_seconds_after_its_answer() -> None:
    # Pipedrive counts a request when it arrives, at the latest when it is answered: counted
    # from our start only, a request held up on its way could share a window with a later one
    now = [0.0]
    budget = TokenBudget(burst=1, clock=lambda: now[0])
    entry = budget.spend(5)
    now[0] = 0.5
    budget.answered(entry)
    now[0] = 2.2
    assert budget.wait_for() == pytest.approx(0.3)
    now[0] = 2.5
    assert budget.wait_for() == 0.0


async def test_a_backfill_asks_for_the_deal_lists_side_by_side_and_hands_them_out_in_order() -> (
    None
):
    """Deals come from four lists (live, archived, deleted, archived + deleted) that do not
    depend on each other: their first requests are in flight together, within the burst
    window; the pages still come out list after list, the deleted deal after the live ones."""
    async with make_harness() as h:
        ids = h.seed_deals(6)
        h.delete(ids[0])
        # no clock: the deal lists' answers are held until three of them are in flight
        # together; asked for one list after another, the first waits in vain (timed out)
        held = h.server.hold(3, match=lambda request: "/deals" in request.path)
        pages = [page async for page in h.connector.source.backfill(None)]
        assert h.server.statuses[429] == 0
        assert held.met and not held.timed_out, held.arrived
        deals = [e for page in pages for e in page.events if e.object == "deal"]
        assert [e.id for e in deals if e.op == "upsert"] == ids[1:]
        assert [e.id for e in deals if e.op == "delete"] == [ids[0]]
        assert deals[-1].op == "delete"  # the deleted list comes after the live one
