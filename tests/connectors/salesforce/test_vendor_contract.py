"""The Salesforce connector against the documented failures: Bulk API 2.0 job states and
failures, result locators, expired query locators, 5xx, slow answers, the daily limit."""

from __future__ import annotations

import pytest
import requests

from crm_pulse.errors import CrmPulseError, RetriableError

from ..helpers import drain
from .harness import SESSION, SalesforceHarness, make_harness

BASE = "/services/data/v59.0"


def _http(h: SalesforceHarness) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(h.connector.settings.ca_cert)
    session.headers["Authorization"] = f"Bearer {SESSION}"
    return session


def _bulk(h: SalesforceHarness, records: int) -> None:
    h.seed_deals(records)
    h.connector.source.bulk_threshold = records - 1
    h.connector.client.bulk_page = 100
    h.connector.client.bulk_wait = 0


async def test_a_bulk_job_goes_upload_complete_in_progress_job_complete() -> None:
    async with make_harness(objects=["Opportunity"]) as h:
        h.seed_deals(250)
        http = _http(h)
        created = http.post(
            f"{h.server.url}{BASE}/jobs/query",
            json={"operation": "query", "query": "SELECT Id, Amount FROM Opportunity"},
        )
        job = created.json()
        assert job["state"] == "UploadComplete"
        results = f"{h.server.url}{BASE}/jobs/query/{job['id']}/results"
        early = http.get(results)
        assert early.status_code == 412
        assert early.json()[0]["errorCode"] == "JOB_NOT_COMPLETE"
        states = [http.get(f"{h.server.url}{BASE}/jobs/query/{job['id']}").json() for _ in (1, 2)]
        assert [s["state"] for s in states] == ["InProgress", "JobComplete"]
        assert states[-1]["numberRecordsProcessed"] == 250
        # results come in sets linked by Sforce-Locator, the last one "null"
        rows, locator, sets = 0, "", 0
        while True:
            page = http.get(results, params={"maxRecords": 100, "locator": locator or None})
            assert page.status_code == 200
            rows += int(page.headers["Sforce-NumberOfRecords"])
            sets += 1
            locator = page.headers["Sforce-Locator"]
            if locator == "null":
                break
        assert (rows, sets) == (250, 3)


async def test_the_connector_waits_for_a_slow_bulk_job() -> None:
    async with make_harness(objects=["Opportunity"]) as h:
        _bulk(h, 300)
        h.fake.bulk_checks = 4  # three checks see it InProgress
        events, _ = await drain(h.connector.source.backfill(None))
        assert len({e.id for e in events}) == 300
        (state,) = h.fake.bulk_states.values()
        assert (state["state"], state["checks"]) == ("JobComplete", 4)


async def test_a_failed_bulk_job_is_reported_and_the_next_backfill_succeeds() -> None:
    async with make_harness(objects=["Opportunity"]) as h:
        _bulk(h, 300)
        h.fake.fail_bulk_jobs(1, "InvalidBatch : Failed to process query")
        with pytest.raises(RetriableError, match=r"Bulk API job failed.*Failed to process query"):
            await drain(h.connector.source.backfill(None))
        events, _ = await drain(h.connector.source.backfill(None))
        assert len({e.id for e in events}) == 300


async def test_an_expired_query_locator_is_reported_not_skipped() -> None:
    async with make_harness(objects=["Opportunity"]) as h:
        # the client reads 2,000 records (10 pages of 200) per step, and reads the next step
        # ahead while the caller holds one: the expiry meets step two or three
        h.seed_deals(4500)
        pages = h.connector.source.backfill(None)
        first = await anext(pages)
        assert first.events
        h.fake.expire_query_locators()
        with pytest.raises(CrmPulseError, match="INVALID_QUERY_LOCATOR"):
            async for _ in pages:
                pass
        # resuming from the last cursor reads the rest
        events, _ = await drain(h.connector.source.backfill(first.cursor))
        assert len({e.id for e in first.events} | {e.id for e in events}) == 4500


async def test_5xx_and_slow_answers_are_retried() -> None:
    async with make_harness(objects=["Opportunity"], timeout="500ms") as h:
        h.seed_deals(5)
        h.connector.client.sleep = _no_sleep
        h.fake.fail(2, 503)
        events, _ = await drain(h.connector.source.backfill(None))
        assert len(events) == 5
        h.fake.stall(1, 1.5)  # slower than the client's timeout, once
        events, _ = await drain(h.connector.source.backfill(None))
        assert len(events) == 5


async def _no_sleep(seconds: float) -> None:
    return None
