"""Pipedrive write-back (one PATCH per record) sends a round's PATCHes concurrently, paced by
the burst window: never more requests per rolling two seconds than the plan allows."""

from __future__ import annotations

from crm_pulse.connectors.protocols import FieldWrite

from .harness import FIELD, make_harness


async def test_patches_go_concurrently_and_never_beyond_the_burst_window() -> None:
    async with make_harness(burst=8) as h:  # 8 requests per rolling 2 s
        h.server.latency = 0.2
        ids = h.seed_deals(12)
        sink = h.connector.sink
        assert sink.max_batch >= 12
        writes = [FieldWrite("pipedrive", "deal", i, FIELD, n) for n, i in enumerate(ids)]
        await h.connector.keys.load("deals")  # the account's burst size is known from here on
        results = await sink.write(writes)
        assert all(r.ok for r in results)
        assert h.server.statuses[429] == 0  # the limit was never exceeded
        assert 1 < h.server.peak_in_flight <= 8  # concurrent, bounded by the window
        assert h.fake.write_calls() == 12
        assert all(h.fake.custom_value("deals", i, FIELD) == n for n, i in enumerate(ids))
