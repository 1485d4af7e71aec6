"""The one retry policy (crm_pulse.retry): full-jitter backoff, the vendor's wait, caps."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest

from crm_pulse.errors import DataError, FatalError, RateLimited, RetriableError
from crm_pulse.retry import Backoff, retrying, wait_from_headers

PACKAGE = Path(__file__).resolve().parents[1] / "crm_pulse"


def test_delays_are_full_jitter_under_an_exponential_cap() -> None:
    backoff = Backoff(initial=1.0, maximum=10.0, attempts=None, rng=random.Random(3))
    for failures, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (60, 10.0)]:
        delays = [backoff.delay(failures) for _ in range(400)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > 0.9 * cap and min(delays) < 0.1 * cap  # spread over all of [0, cap]
    assert backoff.delay(10_000) <= 10.0  # no overflow however long the outage


def test_the_vendors_wait_wins_and_attempts_are_counted() -> None:
    backoff = Backoff(initial=1.0, maximum=10.0, attempts=3)
    assert backoff.delay(1, retry_after=42.0) == 42.0
    assert backoff.delay(1, retry_after=0.0) == 0.0
    assert not backoff.exhausted(2) and backoff.exhausted(3)
    assert not Backoff(attempts=None).exhausted(10**6)


async def test_retrying_retries_transient_failures_then_gives_up() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RateLimited("429", retry_after=7.0)
        if calls == 2:
            raise RetriableError("503")
        return "ok"

    backoff = Backoff(initial=1.0, maximum=30.0, attempts=4, max_wait=30.0)
    assert await retrying("flaky", flaky, backoff, sleep=sleep) == "ok"
    assert calls == 3 and slept[0] == 7.0 and 0 <= slept[1] <= 2.0

    async def down() -> str:
        raise RetriableError("still down")

    slept.clear()
    with pytest.raises(RetriableError):
        await retrying("down", down, backoff, sleep=sleep)
    assert len(slept) == 3  # four attempts, three waits


@pytest.mark.parametrize("error", [FatalError("token"), DataError("bad record")])
async def test_retrying_raises_what_is_not_worth_a_retry_at_once(error: Exception) -> None:
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(type(error)):
        await retrying("call", call, Backoff(attempts=5))
    assert calls == 1


async def test_a_vendor_wait_over_max_wait_goes_to_the_caller() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def call() -> None:
        raise RateLimited("daily limit", retry_after=3600.0)

    with pytest.raises(RateLimited):
        await retrying("call", call, Backoff(attempts=5, max_wait=30.0), sleep=sleep)
    assert slept == []

    async def write() -> None:
        raise RateLimited("429", retry_after=1.0)

    def not_rate_limits(error: Exception) -> bool:
        return not isinstance(error, RateLimited)

    with pytest.raises(RateLimited):  # a caller may refuse some retries (writes: the outbox)
        await retrying("write", write, Backoff(attempts=5), retry_on=not_rate_limits, sleep=sleep)
    assert slept == []


def test_wait_from_headers() -> None:
    now = 1_800_000_000.0
    assert wait_from_headers({"Retry-After": "7"}) == 7.0
    assert wait_from_headers({"retry-after": "2.5"}) == 2.5
    date = format_datetime(datetime.fromtimestamp(now + 90, UTC), usegmt=True)
    assert wait_from_headers({"Retry-After": date}, now=lambda: now) == pytest.approx(90)
    assert wait_from_headers({"x-ratelimit-reset": "2"}, reset="X-RateLimit-Reset") == 2.0
    epoch = {"X-Reset": str(now + 30)}
    assert wait_from_headers(epoch, reset="x-reset", reset_is="epoch", now=lambda: now) == 30.0
    assert (
        wait_from_headers({"Retry-After": "3", "x-ratelimit-reset": "9"}, reset="x-ratelimit-reset")
        == 3.0
    )
    assert wait_from_headers({"Retry-After": "soon"}) is None
    assert wait_from_headers({}) is None
    assert wait_from_headers({"Retry-After": "-5"}) == 0.0


def test_no_other_module_computes_a_backoff() -> None:
    """Retry logic exists in one place: no other module draws jitter or doubles a delay."""
    pattern = re.compile(r"random\.uniform|2(\.0)? \*\* |import random")
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "retry.py"
        and "sandbox" not in p.parts
        and pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []
