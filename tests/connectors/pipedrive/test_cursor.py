"""Interrupted polls resume without losing changes; archived deals still make customers."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from crm_pulse.connectors.protocols import Cursor, Page, WebhookRequest
from crm_pulse.metrics import Engine, build_catalog
from crm_pulse.sandbox.pipedrive import FakePipedrive

from ..helpers import drain
from .harness import make_harness


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _set(fake: FakePipedrive, entity: str, rid: str, **data: Any) -> None:
    """Change a record as if it had been changed at ``data['update_time']``."""
    with fake._lock:
        fake.records[entity][rid].update(data)


async def _until(pages: AsyncIterator[Page], stop: str) -> Cursor:
    """Read pages until one carries the record ``stop``; then the process 'crashes'."""
    try:
        async for page in pages:
            if any(e.id == stop for e in page.events):
                return page.cursor
    finally:
        await pages.aclose()  # type: ignore[attr-defined]
    raise AssertionError(f"record {stop} was never read")


async def test_a_poll_interrupted_between_deal_lists_still_reads_archived_deals() -> None:
    async with make_harness() as h:
        archived, changed = h.seed_deals(2)
        _, cursor = await drain(h.connector.source.backfill(None))
        now = time.time()
        # archived first, another deal changed minutes later
        _set(h.fake, "deals", archived, is_archived=True, update_time=_iso(now + 100))
        _set(h.fake, "deals", changed, value=5, update_time=_iso(now + 400))
        crashed = await _until(h.connector.source.poll(cursor), changed)
        events, _ = await drain(h.connector.source.poll(crashed))
        assert archived in {e.id for e in events if e.op == "upsert"}


async def _after(pages: AsyncIterator[Page], n: int) -> Cursor:
    """The cursor of the ``n``-th page; then the process 'crashes'."""
    try:
        seen = 0
        async for page in pages:
            seen += 1
            if seen == n:
                return page.cursor
    finally:
        await pages.aclose()  # type: ignore[attr-defined]
    raise AssertionError(f"fewer than {n} pages")


async def test_a_poll_interrupted_after_the_deals_still_restates_their_organizations() -> None:
    async with make_harness() as h:
        now = time.time()
        org = h.fake.create("organizations", {"name": "ACME"})
        later = h.fake.create("organizations", {"name": "Other"})
        _set(h.fake, "organizations", org, update_time=_iso(now - 7200))
        _set(h.fake, "organizations", later, update_time=_iso(now - 3600))
        deal, other = h.seed_deals(2)
        _set(h.fake, "deals", deal, org_id=int(org))
        events, cursor = await drain(h.connector.source.backfill(None))
        (before,) = [e for e in events if e.object == "account" and e.id == org]
        assert before.fields["customer_since"] is None
        # the organization's deal is won; minutes later another deal changes
        _set(
            h.fake,
            "deals",
            deal,
            status="won",
            won_time="2026-11-20 10:00:00",
            update_time=_iso(now + 100),
        )
        _set(h.fake, "deals", other, value=1, update_time=_iso(now + 400))
        # pages: open/won/lost deals, archived deals, then the crash
        crashed = await _after(h.connector.source.poll(cursor), 2)
        events, _ = await drain(h.connector.source.poll(crashed))
        assert deal not in {e.id for e in events}  # not re-read: the overlap is 60 s
        restated = [e for e in events if e.object == "account" and e.id == org]
        assert restated and restated[-1].fields["customer_since"] == "2026-11-20T10:00:00Z"


async def test_an_archived_won_deal_still_makes_its_organization_a_customer() -> None:
    async with make_harness() as h:
        org = h.fake.create("organizations", {"name": "ACME"})
        h.fake.create(
            "deals",
            {
                "value": 10,
                "status": "won",
                "won_time": "2026-02-03 04:05:06",
                "org_id": int(org),
                "is_archived": True,
            },
        )
        events, _ = await drain(h.connector.source.backfill(None))
        (account,) = [e for e in events if e.object == "account" and e.id == org]
        assert account.fields["customer_since"] == "2026-02-03T04:05:06Z"


async def test_a_change_and_a_delete_in_one_second_end_deleted() -> None:
    async with make_harness() as h:
        polled_id, hooked_id = h.seed_deals(2)
        second = _iso(time.time() + 50)
        _set(h.fake, "deals", polled_id, value=7, update_time=second)
        _set(h.fake, "deals", hooked_id, value=7, update_time=second)
        changed, cursor = await drain(h.connector.source.backfill(None))
        # both are deleted within that same second (Pipedrive's times have no milliseconds)
        _set(h.fake, "deals", polled_id, status="deleted", is_deleted=True, update_time=second)
        headers, body = h.fake.webhook("delete", "deals", hooked_id)
        payload = json.loads(body)
        payload["meta"]["timestamp"] = second
        body = json.dumps(payload).encode()
        hooked = await h.connector.receiver.parse(WebhookRequest("POST", "u", headers, body, 0))
        polled, _ = await drain(h.connector.source.poll(cursor))
        engine = Engine(build_catalog())
        engine.apply_all(changed)
        engine.apply_all(polled + hooked)
        deletes = {e.id for e in polled + hooked if e.op == "delete"}
        assert deletes == {polled_id, hooked_id}
        report = {
            (r.metric, r.window.label): r.value
            for r in engine.report(int(time.time() * 1000))
            if r.group == ()
        }
        # neither deleted deal is in the open pipeline any more
        assert report[("open_pipeline_value", "current")] == 0


async def test_a_full_backfill_learns_customers_from_the_deals_it_reads() -> None:
    async with make_harness() as h:
        orgs = [h.fake.create("organizations", {"name": f"Org {i}"}) for i in range(20)]
        for i, org in enumerate(orgs):
            won = {"status": "won", "won_time": f"2026-0{1 + i % 9}-01 10:00:00"}
            h.fake.create("deals", {"value": 10, "org_id": int(org), **(won if i % 2 else {})})
        events, cursor = await drain(h.connector.source.backfill(None))
        lists = [p for m, p in h.fake.calls if m == "GET" and p.startswith("/api/v2/deals")]
        # open/won/lost, archived, deleted, archived-then-deleted: no listing per organization
        assert len(lists) == 4
        accounts = {e.id: e.fields["customer_since"] for e in events if e.object == "account"}
        assert accounts == {
            org: (f"2026-0{1 + i % 9}-01T10:00:00Z" if i % 2 else None)
            for i, org in enumerate(orgs)
        }
        # the same answer as a poll, which lists the deals of each organization it re-states
        h.fake.update("organizations", orgs[1], {"name": "renamed"})
        polled, _ = await drain(h.connector.source.poll(cursor))
        (again,) = [e for e in polled if e.object == "account" and e.id == orgs[1]]
        assert again.fields["customer_since"] == accounts[orgs[1]]
