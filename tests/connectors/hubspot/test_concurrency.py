"""HubSpot write-back sends a round's batch/update calls at once, kept under the account's
rolling-window limit by the client; the search API is paced at HubSpot's 5 per second."""

from __future__ import annotations

import asyncio
import logging

import pytest

from crm_pulse.connectors.hubspot import HubSpotConnector
from crm_pulse.connectors.hubspot.client import SEARCH_ARRIVAL
from crm_pulse.connectors.hubspot.sink import BATCH_MAX, PARALLEL
from crm_pulse.connectors.protocols import FieldWrite
from crm_pulse.sandbox.conformance import drain

from .harness import FIELD, make_harness


async def test_batches_of_a_round_go_at_once_and_stay_under_the_rate_window() -> None:
    """Stall-proof: the client counts each call as "now" until its answer, so however late
    HubSpot sees a call (a loaded machine), the window never overflows; a latch (``hold``)
    proves a round's calls are in flight together without reading a clock."""
    async with make_harness(objects=["deals"]) as h:
        ids = h.seed_deals(2 * BATCH_MAX * PARALLEL)
        h.fake.rate_max, h.fake.rate_interval_ms = 3, 1000  # 3 calls per rolling second
        sink = h.connector.sink
        assert sink.max_batch == BATCH_MAX * PARALLEL
        await h.connector.client.pipelines("deals")  # an answer tells the client the limit
        assert (h.connector.client.window.calls, h.connector.client.window.seconds) == (3, 1.0)
        writes = [FieldWrite("hubspot", "deals", i, FIELD, n) for n, i in enumerate(ids)]
        held = h.server.hold(2)  # answers wait until two calls are in flight: no clock
        for start in range(0, len(writes), sink.max_batch):
            results = await sink.write(writes[start : start + sink.max_batch])
            assert all(r.ok for r in results)
        assert h.fake.throttled == 0  # never over the window
        assert h.fake.write_calls() == 2 * PARALLEL  # 100 inputs a call
        assert held.met and not held.timed_out  # calls overlapped
        assert all(h.fake.value("deals", i, FIELD) == str(n) for n, i in enumerate(ids))


async def test_calls_hubspot_sees_late_still_keep_the_next_ones_out_of_its_window() -> None:
    """A loaded machine, reproduced: the first two write calls reach HubSpot 1.5 s after they
    left (no answer, so no rate-limit headers, meanwhile). Counted from their start, they
    leave the client's window after 1.1 s and two more calls go, which land in HubSpot's
    window together with the late ones (a 429); counted as "now" until answered, they wait."""
    async with make_harness(objects=["deals"]) as h:
        h.server.latency = 0.05
        ids = h.seed_deals(2 * BATCH_MAX * PARALLEL)
        h.fake.rate_max, h.fake.rate_interval_ms = 3, 1000
        sink = h.connector.sink
        await h.connector.client.pipelines("deals")  # learn the limit
        h.fake.stall(2, 1.5)
        writes = [FieldWrite("hubspot", "deals", i, FIELD, n) for n, i in enumerate(ids)]
        for start in range(0, len(writes), sink.max_batch):
            results = await sink.write(writes[start : start + sink.max_batch])
            assert all(r.ok for r in results)
        assert h.fake.throttled == 0
        assert h.fake.write_calls() == 2 * PARALLEL


async def test_search_is_paced_at_five_per_second_without_a_429() -> None:
    async with make_harness(
        objects=["deals"], search_limit=True, options={"search_per_second": 5.0}
    ) as h:
        default = HubSpotConnector("hubspot", h.connector.settings).client.search_window
        assert default is not None and (default.calls, default.seconds) == (5, 1.0)
        h.seed_deals(1200)  # 6 search pages: more than one second's allowance
        events, _ = await drain(h.connector.source.backfill(None))
        assert len({e.id for e in events}) == 1200
        assert h.fake.throttled == 0


async def test_the_next_search_is_asked_while_the_caller_holds_a_page() -> None:
    async with make_harness(objects=["deals"]) as h:
        h.seed_deals(700)  # four pages of 200
        pages = h.connector.source.backfill(None)
        first = await anext(pages)
        assert len(first.events) == 200

        def searches() -> int:
            return sum(1 for _, path in h.fake.calls if path.endswith("/search"))

        for _ in range(400):  # page two's request may take a while to arrive on a busy machine
            if searches() >= 2:
                break
            await asyncio.sleep(0.05)
        # page two is asked for (one ahead), page three not yet: it leaves only once page two
        # is handed out, so this holds however long we wait
        assert searches() == 2
        await pages.aclose()  # stopping early drops the search asked ahead, quietly
        events, _ = await drain(h.connector.source.backfill(first.cursor))
        assert len({e.id for e in first.events} | {e.id for e in events}) == 700


async def test_searches_that_reach_hubspot_late_still_keep_its_search_window() -> None:
    """The search window credits a page the part of its round trip HubSpot spent after
    counting it; the pipelines call and the first two searches reach HubSpot 0.6 s late
    (counted on arrival), the rest at once: their longer round trips count them later, and
    HubSpot never sees more than 5 searches in a second."""
    async with make_harness(
        objects=["deals"], search_limit=True, options={"search_per_second": 5.0}
    ) as h:
        h.server.latency = 0.15  # HubSpot's work after the count: a credit of >= 50 ms
        window = h.connector.client.search_window
        assert window is not None and window.arrival == SEARCH_ARRIVAL
        h.seed_deals(1400)  # 8 searches
        h.fake.stall(3, 0.6)
        events, _ = await drain(h.connector.source.backfill(None))
        assert len({e.id for e in events}) == 1400
        assert h.fake.throttled == 0
        assert window.arrival == SEARCH_ARRIVAL  # never refused: the credit stays
        assert window.fastest is not None and window.fastest - SEARCH_ARRIVAL >= 0.05


async def test_a_refused_search_withdraws_the_credit(caplog: pytest.LogCaptureFixture) -> None:
    """Should HubSpot refuse a search the window let through, its count came later than the
    client allowed for: the search is retried after Retry-After, and searches count from
    their answers from then on."""
    async with make_harness(
        objects=["deals"], search_limit=True, options={"search_per_second": 5.0}
    ) as h:
        h.seed_deals(10)
        client = h.connector.client
        h.fake.rate_limit(1, 0.0)  # the next call is refused, Retry-After 0
        body = {"filterGroups": [], "limit": 10, "properties": ["dealname"]}
        with caplog.at_level(logging.WARNING, logger="crm_pulse.hubspot"):
            data = await client.search("deals", body)
        assert len(data["results"]) == 10  # retried
        assert client.search_window is not None and client.search_window.arrival is None
        assert "counted from their answers" in caplog.text
