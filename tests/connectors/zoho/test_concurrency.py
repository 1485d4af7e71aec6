"""Zoho write-back uses the edition's concurrency: a round's Update Records calls go at once,
never more at a time than the ``concurrency`` setting (which the simulator enforces with 429)."""

from __future__ import annotations

from crm_pulse.connectors.protocols import FieldWrite
from crm_pulse.connectors.zoho.client import UPDATE_BATCH
from crm_pulse.connectors.zoho.sink import WAVES

from ..helpers import drain
from .harness import FIELD, make_harness


async def test_a_round_sends_its_update_calls_at_once_within_the_concurrency() -> None:
    async with make_harness(concurrency=3) as h:
        h.fake.concurrency = 3  # the edition's limit: a fourth call in flight would get 429
        # no clock: Update Records answers wait until three of them are in flight together
        held = h.server.hold(3, match=lambda request: request.method == "PUT")
        ids = h.seed_deals(700)
        sink = h.connector.sink
        assert sink.max_batch == 3 * UPDATE_BATCH * WAVES
        writes = [FieldWrite("zoho", "deal", i, FIELD, n) for n, i in enumerate(ids)]
        before = h.fake.write_calls()
        for start in range(0, len(writes), sink.max_batch):  # as the writer sends them
            results = await sink.write(writes[start : start + sink.max_batch])
            assert all(r.ok for r in results)
        assert h.fake.write_calls() - before == 7  # 100 records a call, no more
        assert held.met and not held.timed_out  # three calls at once ...
        assert h.server.peak_in_flight == 3  # ... and never more than the setting
        assert h.fake.concurrency_refusals == 0
        assert all(h.fake.value("Deals", i, FIELD) == n for n, i in enumerate(ids))


async def test_a_poll_asks_for_deleted_records_beside_the_scan_and_hands_them_out_after() -> None:
    async with make_harness() as h:
        ids = h.seed_deals(5)
        source = h.connector.source
        _, cursor = await drain(source.backfill(None))
        h.delete(ids[0])
        h.touch(ids[1])
        # no clock: answers are held until two requests are in flight together; Get Deleted
        # Records asked for after the scan would leave the scan's answer waiting (timed out)
        held = h.server.hold(2)
        pages = [page async for page in source.poll(cursor)]
        assert held.met and not held.timed_out, held.arrived
        events = [e for page in pages for e in page.events if e.object == "deal"]
        assert ids[1] in {e.id for e in events if e.op == "upsert"}
        assert [e.id for e in events if e.op == "delete"] == [ids[0]]
        assert events[-1].op == "delete"  # after the scan's pages, as before
        assert h.fake.concurrency_refusals == 0
