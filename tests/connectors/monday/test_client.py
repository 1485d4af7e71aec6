"""The monday client's error translation and retries, against scripted HTTP answers."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import pytest

from crm_pulse.connectors import Backoff
from crm_pulse.connectors.monday.client import MondayClient
from crm_pulse.connectors.monday.errors import CursorExpired
from crm_pulse.errors import FatalError, RateLimited, RetriableError, SkippableError

from .harness import TOKEN, settings


def client(
    answers: list[httpx.Response], seen: list[httpx.Request]
) -> tuple[MondayClient, list[float]]:
    waits: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    c = MondayClient(
        settings("https://api.monday.test"),
        transport=httpx.MockTransport(handler),
        sleep=no_wait,
        backoff=Backoff(initial=0.5, maximum=30.0, attempts=4, max_wait=30.0, rng=random.Random(1)),
    )
    return c, waits


def ok(data: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"data": data})


async def test_headers_variables_and_the_old_error_format() -> None:
    seen: list[httpx.Request] = []
    old = {
        "error_code": "ComplexityException",
        "status_code": 429,
        "error_message": "Complexity budget exhausted, query cost 30001 budget remaining 19986 "
        "out of 1000000 reset in 3 seconds",
        "error_data": {},
    }
    c, waits = client([httpx.Response(429, json=old), ok({"items": []})], seen)
    assert await c.items(["1"]) == []
    assert waits == [3.0]
    request = seen[0]
    assert request.headers["Authorization"] == TOKEN
    assert request.headers["API-Version"] == "2025-10"
    body = json.loads(request.content)
    assert body["variables"] == {"ids": ["1"]} and "$ids" in body["query"]
    await c.aclose()


async def test_the_old_complexity_error_in_a_200_with_its_errors_list_is_a_rate_limit() -> None:
    # the body the changelog documents ("Bug fix: Changes to ComplexityException error
    # reverted"): ``errors`` is a list of plain messages beside error_code; it used to be read
    # first, lost the code, and a read failed as "skippable" instead of waiting
    message = (
        "Complexity budget exhausted, query cost 30001 budget remaining 19986 out of 1000000 "
        "reset in 3 seconds"
    )
    old = {
        "error_code": "ComplexityException",
        "status_code": 429,
        "error_message": message,
        "error_data": {},
        "errors": [message],
        "account_id": 1234567890,
    }
    c, waits = client([httpx.Response(200, json=old), ok({"items": []})], [])
    assert await c.items(["1"]) == []
    assert waits == [3.0]
    await c.aclose()


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(401, json={"errors": [{"message": "Not Authenticated"}]}), FatalError),
        (
            httpx.Response(
                200,
                json={
                    "errors": [{"message": "x", "extensions": {"code": "InvalidItemIdException"}}]
                },
            ),
            SkippableError,
        ),
        (
            httpx.Response(
                200,
                json={
                    "errors": [
                        {
                            "message": "CursorExpiredError: expired",
                            "extensions": {"code": "CursorExpiredError"},
                        }
                    ]
                },
            ),
            CursorExpired,
        ),
        (
            httpx.Response(
                429,
                headers={"Retry-After": "9"},
                json={"errors": [{"message": "Rate limit exceeded"}]},
            ),
            RateLimited,
        ),
    ],
)
async def test_answers_become_crm_pulse_errors(
    answer: httpx.Response, error: type[Exception]
) -> None:
    c, _ = client([answer], [])
    with pytest.raises(error) as info:
        await c.graphql("query { me { id } }", {}, "a read", retry=False)
    assert TOKEN not in str(info.value)
    if isinstance(info.value, RateLimited):
        assert info.value.retry_after == 9
    await c.aclose()


async def test_transient_failures_back_off_with_jitter_then_give_up() -> None:
    c, waits = client([httpx.Response(502, text="bad gateway")] * 4, [])
    with pytest.raises(RetriableError):
        await c.graphql("query { me { id } }", {}, "a read")
    assert len(waits) == 3
    assert all(0 <= w <= cap for w, cap in zip(waits, (0.5, 1.0, 2.0), strict=True))
    await c.aclose()


async def test_a_wait_longer_than_max_wait_is_raised_not_slept() -> None:
    over = {
        "errors": [
            {
                "message": "Complexity budget exhausted",
                "extensions": {"code": "COMPLEXITY_BUDGET_EXHAUSTED", "retry_in_seconds": 45},
            }
        ]
    }
    c, waits = client([httpx.Response(200, json=over)], [])
    with pytest.raises(RateLimited) as info:
        await c.graphql("query { me { id } }", {}, "a read")
    assert info.value.retry_after == 45 and waits == []
    await c.aclose()
