"""The conformance suite's fault checks: every connector, against its simulator producing the
vendor's documented failures (5xx, slow answers, a used-up daily allowance)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from crm_pulse.connectors.protocols import Cursor, Page
from crm_pulse.errors import RateLimited, RetriableError
from crm_pulse.metrics.events import Event

from .harness import Harness
from .test_conformance import _harness_modules


@pytest.fixture(params=_harness_modules())
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    # a short client timeout, so that a slow answer is a timeout
    async with request.param.make_harness(timeout="500ms") as h:
        yield h


async def _drain(pages: AsyncIterator[Page]) -> tuple[list[Event], Cursor | None]:
    events: list[Event] = []
    cursor: Cursor | None = None
    async for page in pages:
        events.extend(page.events)
        cursor = page.cursor
    return events, cursor


def _deal_ids(events: list[Event]) -> set[str]:
    return {e.id for e in events if e.object == "deal" and e.op == "upsert"}


async def test_a_few_server_errors_are_retried_and_nothing_is_lost(harness: Harness) -> None:
    assert harness.connector.source is not None
    ids = harness.seed_deals(20)
    harness.server_errors(2)
    events, _ = await _drain(harness.connector.source.backfill(None))
    assert set(ids) <= _deal_ids(events)


async def test_endless_server_errors_fail_as_retriable(harness: Harness) -> None:
    assert harness.connector.source is not None
    harness.seed_deals(3)
    harness.server_errors(1000)
    with pytest.raises(RetriableError):
        await _drain(harness.connector.source.backfill(None))


async def test_a_slow_answer_times_out_and_is_retried(harness: Harness) -> None:
    assert harness.connector.source is not None
    ids = harness.seed_deals(5)
    harness.server_errors(1, delay=1.5)
    events, _ = await _drain(harness.connector.source.backfill(None))
    assert set(ids) <= _deal_ids(events)


async def test_a_used_up_daily_allowance_pauses_and_resumes(harness: Harness) -> None:
    source = harness.connector.source
    assert source is not None
    ids = harness.seed_deals(5)
    harness.exhaust_daily()
    with pytest.raises(RateLimited) as paused:  # a pause, never a fatal error
        await _drain(source.backfill(None))
    assert paused.value.retry_after is not None and paused.value.retry_after >= 60
    harness.restore_daily()
    events, _ = await _drain(source.backfill(None))
    assert set(ids) <= _deal_ids(events)
