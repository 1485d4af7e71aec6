"""The Pipedrive client alone, with respx: token accounting, 429 handling, error translation."""

from __future__ import annotations

import httpx
import pytest
import respx

from crm_pulse.connectors.pipedrive.client import PipedriveClient, TokenBudget
from crm_pulse.connectors.pipedrive.settings import PipedriveSettings
from crm_pulse.errors import FatalError, RateLimited, SkippableError

BASE = "https://acme.pipedrive.test"


def client(**kw: object) -> tuple[PipedriveClient, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    settings = PipedriveSettings.model_validate({"api_token": "tok-123456", "base_url": BASE, **kw})
    return PipedriveClient(settings, sleep=sleep), slept


@respx.mock
async def test_reads_wait_for_retry_after_and_send_the_token_header() -> None:
    route = respx.get(f"{BASE}/api/v2/deals/5").mock(
        side_effect=[
            httpx.Response(
                429, headers={"Retry-After": "3"}, json={"success": False, "error": "Rate limit"}
            ),
            httpx.Response(200, json={"success": True, "data": {"id": 5}}),
        ]
    )
    c, slept = client()
    assert await c.get("deals", "5") == {"id": 5}
    assert slept == [3.0]
    assert route.calls[0].request.headers["x-api-token"] == "tok-123456"
    await c.aclose()


@respx.mock
async def test_writes_raise_rate_limited_at_once_with_the_reset_time() -> None:
    respx.patch(f"{BASE}/api/v2/deals/5").mock(
        return_value=httpx.Response(
            429, headers={"x-ratelimit-reset": "2"}, json={"success": False}
        )
    )
    c, slept = client()
    with pytest.raises(RateLimited) as info:
        await c.patch("deals", "5", {"custom_fields": {}})
    assert info.value.retry_after == 2.0 and slept == []
    await c.aclose()


@respx.mock
async def test_errors_are_translated_and_never_show_the_token() -> None:
    respx.get(f"{BASE}/api/v2/deals/1").mock(
        return_value=httpx.Response(401, json={"success": False, "error": "unauthorized access"})
    )
    respx.get(f"{BASE}/api/v2/deals/2").mock(
        return_value=httpx.Response(404, json={"success": False, "error": "Deal not found"})
    )
    c, _ = client()
    with pytest.raises(FatalError) as fatal:
        await c.get("deals", "1")
    with pytest.raises(SkippableError, match="Deal not found"):
        await c.request("GET", "/api/v2/deals/2", "get")
    assert await c.get("deals", "2") is None  # get() answers "not there" with None
    assert "tok-123456" not in str(fatal.value)
    await c.aclose()


def test_the_burst_window_counts_requests_not_tokens() -> None:
    # Pipedrive: x-ratelimit-limit is the number of requests per rolling 2 s window; token
    # costs are spent from the daily budget only
    now = [100.0]
    budget = TokenBudget(burst=2, clock=lambda: now[0])
    budget.spend(10)
    assert budget.wait_for(10) == 0.0  # a second request fits, whatever its token cost
    budget.spend(10)
    assert budget.wait_for(1) == pytest.approx(2.0)  # a third does not, even a cheap one
    now[0] += 1.0
    assert budget.wait_for(1) == pytest.approx(1.0)
    now[0] += 1.01
    assert budget.wait_for(1) == 0.0
    assert budget.tokens == 20


@respx.mock
async def test_the_daily_share_is_respected() -> None:
    respx.get(f"{BASE}/api/v2/deals/1").mock(
        return_value=httpx.Response(
            200,
            headers={"x-daily-requests-left": "1000"},
            json={"success": True, "data": {"id": 1}},
        )
    )
    c, _ = client(budget_share=0.1)
    await c.get("deals", "1")
    c.budget.daily_left = 899  # 10 % of 1,000 used by us: stop before taking more
    with pytest.raises(RateLimited, match="daily token share"):
        await c.get("deals", "1")
    await c.aclose()


@respx.mock
async def test_a_request_waits_until_the_window_has_room() -> None:
    respx.get(f"{BASE}/api/v2/deals").mock(
        return_value=httpx.Response(200, json={"success": True, "data": []})
    )
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    settings = PipedriveSettings.model_validate({"api_token": "tok-123456", "base_url": BASE})
    c = PipedriveClient(settings, sleep=sleep)
    c.budget = TokenBudget(burst=3, clock=lambda: now[0])
    c.budget.spend(1)
    now[0] = 100.1
    c.budget.spend(1)
    now[0] = 100.15
    c.budget.spend(1)
    now[0] = 100.2
    await c.request("GET", "/api/v2/deals", "list")  # costs 10 tokens, 1 request
    # the window holds 3 requests: this one goes when the oldest leaves (at 102.0)
    assert slept == [pytest.approx(1.8)]
    assert now[0] == pytest.approx(102.0)
    assert c.budget.tokens == 13
    await c.aclose()
