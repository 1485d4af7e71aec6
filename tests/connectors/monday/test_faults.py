"""monday's documented failures, produced by the simulator and met by the connector.

The shapes (docs/connect-monday.md lists the pages) depend on the API-Version a call pins:
the complexity-budget error changed in 2025-01 and again in 2025-07, and versions before
2025-01 answer errors in the old top-level format.
"""

from __future__ import annotations

import json
import ssl
import time
from typing import Any

import httpx
import pytest

from crm_pulse.connectors.monday import MondayConnector
from crm_pulse.connectors.protocols import FieldWrite
from crm_pulse.errors import RateLimited, RetriableError
from crm_pulse.sandbox import contracts
from crm_pulse.sandbox.conformance import drain
from crm_pulse.sandbox.monday import FakeMonday
from crm_pulse.sandbox.server import FakeServer

from .harness import CA, FIELD, TOKEN, make_harness, settings

QUERY = "query ($ids: [ID!]) { items (ids: $ids) { id name } }"


async def raw(url: str, version: str, query: str = QUERY) -> httpx.Response:
    """One call as monday's clients make it, answered by the simulator."""
    verify = ssl.create_default_context(cafile=str(CA.cert_path))
    async with httpx.AsyncClient(verify=verify, trust_env=False) as http:
        return await http.post(
            f"{url}/v2",
            json={"query": query, "variables": {"ids": ["1"]}},
            headers={"Authorization": TOKEN, "API-Version": version},
        )


@pytest.mark.parametrize(
    ("version", "shape"),
    [
        ("2024-10", "old"),  # top-level ComplexityException, "reset in N seconds"
        ("2025-01", "budget"),  # COMPLEXITY_BUDGET_EXHAUSTED with the budget fields
        ("2025-07", "simple"),  # only code and retry_in_seconds
        ("2025-10", "simple"),
    ],
)
async def test_the_complexity_error_has_the_shape_of_the_api_version(
    version: str, shape: str
) -> None:
    async with make_harness(api_version=version) as h:
        h.fake.exhaust_complexity(1, 12)
        answer = await raw(h.server.url, version)
        assert answer.status_code == 200  # an application-level error
        body = answer.json()
        if shape == "old":
            assert body["error_code"] == "ComplexityException"
            assert body["status_code"] == 429
            assert "reset in 12 seconds" in body["error_message"]
            assert body["errors"] == [body["error_message"]]
        else:
            ext = body["errors"][0]["extensions"]
            assert ext["code"] == "COMPLEXITY_BUDGET_EXHAUSTED"
            assert ext["retry_in_seconds"] == 12
            budget = {"complexity", "complexity_budget_left", "complexity_budget_limit"}
            assert (budget <= set(ext)) is (shape == "budget")


@pytest.mark.parametrize("version", ["2024-10", "2025-01", "2025-07", "2025-10"])
async def test_reads_wait_out_the_complexity_error_of_every_version(version: str) -> None:
    async with make_harness(api_version=version) as h:
        (deal,) = h.seed_deals(1)
        waits: list[float] = []

        async def no_wait(seconds: float) -> None:
            waits.append(seconds)

        h.connector.client.sleep = no_wait
        h.fake.exhaust_complexity(2, 9)
        events, _ = await drain(h.connector.source.backfill(None))
        assert deal in {e.id for e in events}
        assert waits == [9, 9]
        h.fake.exhaust_complexity(1, 40)
        with pytest.raises(RateLimited) as info:  # writes go back to the outbox
            await h.connector.sink.write([FieldWrite("monday", "deal", deal, FIELD, 1.0)])
        assert info.value.retry_after == 40


async def test_a_spent_budget_answers_in_the_old_format_for_old_versions() -> None:
    fake = FakeMonday(TOKEN, budget=500)
    fake.add_board("Deals", "deals")
    with FakeServer(fake.app(), ca=CA) as server:
        heavy = "query { boards (ids: [1000001]) { items_page (limit: 500) { cursor } } }"
        body = (await raw(server.url, "2024-10", heavy)).json()
        assert body["error_code"] == "ComplexityException"
        assert "out of 500 reset in" in body["error_message"]
        c = MondayConnector("monday", settings(server.url, api_version="2024-10"))
        with pytest.raises(RateLimited) as info:
            await c.client.graphql(heavy, {}, "a heavy read", retry=False)
        assert info.value.retry_after is not None and 0 < info.value.retry_after <= 61
        await c.aclose()


async def test_the_minute_limit_is_a_429_with_retry_after() -> None:
    async with make_harness() as h:
        h.fake.rate_limit(1, 7)
        answer = await raw(h.server.url, "2025-10")
        assert answer.status_code == 429
        assert answer.headers["Retry-After"] == "7"
        assert answer.json()["errors"][0]["extensions"]["code"] == "RATE_LIMIT_EXCEEDED"


async def test_the_daily_limit_lasts_until_midnight_utc_then_resets() -> None:
    now = [86400.0 * 20000 + 23 * 3600]  # 23:00 UTC
    fake = FakeMonday(TOKEN, clock=lambda: now[0])
    fake.add_board("Deals", "deals")
    with FakeServer(fake.app(), ca=CA) as server:
        fake.exhaust_daily()
        answer = await raw(server.url, "2025-10")
        assert answer.status_code == 429
        assert answer.headers["Retry-After"] == "3600"
        assert answer.json()["errors"][0]["extensions"]["code"] == "DAILY_LIMIT_EXCEEDED"
        c = MondayConnector("monday", settings(server.url))
        with pytest.raises(RateLimited) as info:  # an hour is beyond max_wait: a pause
            await c.client.columns("1000001")
        assert info.value.retry_after == 3600
        now[0] += 3600  # midnight: a new day
        assert (await c.client.columns("1000001"))[0]["title"] == "Deal stage"
        await c.aclose()


async def test_the_500_body_is_monday_s_and_is_retried() -> None:
    async with make_harness() as h:
        h.fake.fail(1, 500)
        answer = await raw(h.server.url, "2025-10")
        assert answer.status_code == 500
        assert answer.json() == {
            "error_message": "Internal server error",
            "status_code": 500,
            "account_id": h.fake.account_id,
        }
        h.server_errors(3)
        ids = h.seed_deals(2)
        events, _ = await drain(h.connector.source.backfill(None))
        assert set(ids) <= {e.id for e in events}
        h.fake.fail(1000, 503)
        with pytest.raises(RetriableError):
            await h.connector.client.columns("1000001")


async def test_a_slow_answer_is_a_timeout_that_is_retried() -> None:
    async with make_harness() as h:
        ids = h.seed_deals(3)
        h.slow_answers(1)
        waits: list[float] = []

        async def sleep(seconds: float) -> None:  # the retry's backoff, recorded, not waited
            waits.append(seconds)

        h.connector.client.sleep = sleep
        events, _ = await drain(h.connector.source.backfill(None))
        assert set(ids) <= {e.id for e in events}
        # gave up on the slow one (a timeout) and asked again, rather than waiting it out: no
        # clock involved, a client that waited would never have backed off to retry
        assert len(waits) == 1


@pytest.mark.parametrize("version", ["2024-10", "2025-10"])
async def test_an_expired_cursor_in_either_format_restarts_the_read(version: str) -> None:
    async with make_harness(page_size=10, api_version=version) as h:
        base = int(time.time()) - 500
        ids = [
            h.fake.create_item(h.deals, f"D{i}", {"Deal value": i}, at=base + i) for i in range(25)
        ]
        seen: list[str] = []
        async for page in h.connector.source.backfill(None):
            seen.extend(e.id for e in page.events)
            if len(seen) == 10:
                h.fake.expire_cursors()
        assert set(ids) <= set(seen)
        assert h.connector.source.restarts == 1
        answer = await raw(
            h.server.url,
            version,
            "query { boards (ids: [1000001]) { items_page (limit: 1) { cursor } } }",
        )
        cursor = answer.json()["data"]["boards"][0]["items_page"]["cursor"]
        h.fake.expire_cursors()
        body = (
            await raw(
                h.server.url,
                version,
                f'query {{ next_items_page (cursor: "{cursor}", limit: 1) {{ cursor }} }}',
            )
        ).json()
        if version == "2024-10":
            assert body["error_code"] == "CursorException"
            assert body["error_message"].startswith("CursorExpiredError")
        else:
            assert body["errors"][0]["message"].startswith("CursorExpiredError")


# ------------------------------------------------------------ the schema checks themselves


def _check(query: str, data: Any, status: int = 200) -> list[str]:
    asked = json.dumps({"query": query, "variables": {}}).encode()
    body = json.dumps(data).encode()
    return contracts.check("monday", "POST", "/v2", status, body, "application/json", asked)


def test_a_conforming_answer_passes() -> None:
    query = "query { items (ids: [1]) { id name state column_values { id text value } } }"
    item = {
        "id": "5",
        "name": "Deal",
        "state": "active",
        "column_values": [{"id": "numbers_1", "text": "3", "value": '"3"'}],
    }
    assert _check(query, {"data": {"items": [item]}, "account_id": 1}) == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"data": {"items": [{"id": 5, "name": "Deal"}]}}, "5 is not of type 'string'"),  # ID
        ({"data": {"items": [{"id": "5"}]}}, "'name' is a required property"),
        (
            {"data": {"items": [{"id": "5", "name": None}]}},
            "None is not of type 'string'",
        ),  # String!
        ({"data": {"items": [{"id": "5", "name": "D", "url": "x"}]}}, "'url' was unexpected"),
        ({"data": {"items": {"id": "5", "name": "D"}}}, "is not of type 'array', 'null'"),
        ({"errors": [{"message": "x", "extensions": {}}]}, "'code' is a required property"),
        (
            {"errors": [{"message": "x", "extensions": {"code": "COMPLEXITY_BUDGET_EXHAUSTED"}}]},
            "'retry_in_seconds' is a required property",
        ),
        (
            {"error_code": "ComplexityException", "error_message": "budget", "status_code": 429},
            "reset in N seconds",
        ),
    ],
)
def test_a_malformed_answer_is_reported(data: dict[str, Any], expected: str) -> None:
    found = _check("query { items (ids: [1]) { id name } }", data)
    assert any(expected in problem for problem in found), found


def test_a_field_monday_does_not_have_is_reported() -> None:
    found = _check("query { items (ids: [1]) { id colour } }", {"data": {"items": []}})
    assert found and "'colour' does not exist on monday's type Item" in found[0]


async def test_a_broken_simulator_answer_fails_the_test_that_saw_it() -> None:
    async with make_harness() as h:
        (deal,) = h.seed_deals(1)
        h.fake.items[deal]["updated_at"] = 1700000000  # a number where monday sends a Date
        await drain(h.connector.source.backfill(None))
        found = contracts.take()  # what the suite's autouse fixture would fail the test with
        assert any("updated_at" in v.problem for v in found), found
