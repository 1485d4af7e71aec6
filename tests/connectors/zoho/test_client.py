"""Zoho's client over real HTTPS: OAuth refresh, data centres, paging limits, credits."""

from __future__ import annotations

import time

import pytest

from crm_pulse.config import load_config_text
from crm_pulse.connectors.zoho.client import CreditBudget, ZohoClient, check_id
from crm_pulse.connectors.zoho.settings import ZohoSettings
from crm_pulse.errors import ConfigError, DataError, FatalError, RateLimited
from crm_pulse.sandbox.server import FakeServer, TestCA
from crm_pulse.sandbox.zoho import FakeZoho

from ..helpers import drain
from .harness import CLIENT_ID, CLIENT_SECRET, REFRESH, make_harness, settings


def test_data_centre_picks_accounts_server_and_api_domain() -> None:
    base = {"client_id": "a", "client_secret": "b", "refresh_token": "c"}
    assert ZohoSettings.model_validate(base).hosts() == (
        "https://accounts.zoho.com",
        "https://www.zohoapis.com",
    )
    eu = ZohoSettings.model_validate({**base, "data_centre": "eu"})
    assert eu.hosts() == ("https://accounts.zoho.eu", "https://www.zohoapis.eu")
    ca = ZohoSettings.model_validate({**base, "data_centre": "ca"})
    assert ca.hosts() == ("https://accounts.zohocloud.ca", "https://www.zohoapis.ca")
    local = ZohoSettings.model_validate(
        {**base, "data_centre": "in", "api_url": "https://127.0.0.1:9/", "accounts_url": None}
    )
    assert local.hosts() == ("https://accounts.zoho.in", "https://127.0.0.1:9")


def test_deployment_file_errors_name_the_key() -> None:
    text = """
connectors:
  - zoho:
      client_id: ${ZID}
      client_secret: plaintext-secret
      refresh_token: ${ZRT}
      data_centre: europe
      notify_url: https://pulse.example.com/webhooks/zoho
      pol_interval: 30s
"""
    with pytest.raises(ConfigError) as info:
        load_config_text(text, env={"ZID": "x", "ZRT": "y"})
    message = str(info.value)
    assert "client_secret" in message and "environment references" in message
    assert "data_centre" in message and "'eu'" in message
    assert "pol_interval" in message and "poll_interval" in message
    assert "plaintext-secret" not in message
    too_long = text.replace("plaintext-secret", "${ZS}").replace("europe", "eu")
    too_long = too_long.replace("      pol_interval: 30s\n", "      channel_token: ${ZT}\n")
    env = {"ZID": "x", "ZRT": "y", "ZS": "z", "ZT": "t" * 51}
    with pytest.raises(ConfigError, match="at most 50 characters"):
        load_config_text(too_long, env=env)
    lapsing = too_long.replace(
        "      channel_token: ${ZT}\n",
        "      channel_token: ${ZT}\n      poll_interval: 10m\n      channel_lifetime: 30m\n",
    )
    with pytest.raises(ConfigError, match="channel_lifetime must exceed 4 x poll_interval"):
        load_config_text(lapsing, env={**env, "ZT": "t" * 20})


async def test_access_token_refreshed_before_expiry_and_once_on_invalid_token() -> None:
    fake = FakeZoho(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=REFRESH)
    now = [1000.0]
    ca = TestCA()
    with FakeServer(fake.app(), ca=ca) as server:
        client = ZohoClient(settings(server, ca), clock=lambda: now[0])
        try:
            fake.create("Deals", {"Amount": 1})
            for _ in range(3):
                await client.list_page("Deals", ["Amount"], since_ms=None)
            assert fake.token_requests == 1  # one token for many calls
            now[0] += 3600 - 299  # within five minutes of expiry: refreshed before it lapses
            await client.list_page("Deals", ["Amount"], since_ms=None)
            assert fake.token_requests == 2
            fake.expire_tokens()  # revoked early: 401 INVALID_TOKEN, refreshed once, retried
            records, _ = await client.list_page("Deals", ["Amount"], since_ms=None)
            assert len(records) == 1 and fake.token_requests == 3
            refused = [p for m, p in fake.calls if p.startswith("/crm")]
            assert len(refused) == 6  # 5 answered calls + the one refused with INVALID_TOKEN
        finally:
            await client.aclose()


async def test_wrong_refresh_token_stops_with_a_message_without_secrets() -> None:
    fake = FakeZoho(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token="other")
    ca = TestCA()
    with FakeServer(fake.app(), ca=ca) as server:
        client = ZohoClient(settings(server, ca))
        try:
            with pytest.raises(FatalError) as info:
                await client.list_page("Deals", ["Amount"], since_ms=None)
        finally:
            await client.aclose()
    message = str(info.value)
    assert "invalid_code" in message and "refresh_token" in message
    for secret in (CLIENT_SECRET, REFRESH, CLIENT_ID):
        assert secret not in message
    assert REFRESH not in repr(client.tokens)


async def test_more_than_2000_records_in_one_second_use_page_token() -> None:
    async with make_harness() as h:
        ids = set(h.seed_deals(2150, same_modified_at=True))
        events, cursor = await drain(h.connector.source.backfill(None))
        assert ids <= {e.id for e in events if e.object == "deal"}
        lists = [p for m, p in h.fake.calls if m == "GET" and p == "/crm/v8/Deals"]
        # the first page starts the window at that second; then its pages 1..10 (2,000
        # records, Zoho's limit for `page`) and the rest through one page_token
        assert len(lists) == 12 and h.fake.page_tokens_used == 1
        assert cursor is not None


async def test_past_the_page_token_limit_within_one_second_the_read_stops_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeZoho(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH,
        record_limit=2200,
        notify_api_writes=False,
    )
    async with make_harness(fake=fake) as h:
        h.seed_deals(2500, same_modified_at=True)
        with caplog.at_level("WARNING", logger="crm_pulse.zoho"):
            events, cursor = await drain(h.connector.source.backfill(None))
        assert 2200 <= len({e.id for e in events if e.object == "deal"}) < 2500
        assert "paging limit reached" in caplog.text
        assert cursor is not None


async def test_keyset_windows_read_changes_made_during_the_read() -> None:
    async with make_harness() as h:
        base = time.time() - 3600
        first = [
            h.fake.create("Deals", {"Amount": i, "Stage": "Qualification"}, at=base + i // 2)
            for i in range(500)
        ]
        seen: set[str] = set()
        touched = False
        async for page in h.connector.source.backfill(None):
            seen.update(e.id for e in page.events if e.object == "deal")
            if not touched and seen:
                # records already read move to the end: with page numbers every later record
                # would shift ten places towards the start and ten would never be read
                for rid in first[:10]:
                    h.touch(rid)
                touched = True
        assert set(first) <= seen


def test_ids_are_checked_before_they_reach_a_url() -> None:
    assert check_id(" 5725767000000100001 ") == "5725767000000100001"
    for bad in ("../settings/fields", "1;2", "", "12a", "1" * 20):
        with pytest.raises(DataError):
            check_id(bad)


def test_credit_budget_holds_a_share_of_the_daily_credits() -> None:
    now = [0.0]
    budget = CreditBudget(daily=1000, share=0.1, clock=lambda: now[0])
    for _ in range(100):
        assert budget.wait_for(1) == 0.0
        budget.spend(1)
    wait = budget.wait_for(1)
    assert wait == pytest.approx(24 * 3600)
    now[0] += 24 * 3600 + 1
    assert budget.wait_for(1) == 0.0


async def test_credit_share_used_up_pauses_with_the_wait() -> None:
    async with make_harness(daily_credits=20, credit_share=0.5) as h:
        h.seed_deals(3)
        with pytest.raises(RateLimited) as info:
            for _ in range(20):
                await h.connector.client.list_page("Deals", ["Amount"], since_ms=None)
        assert info.value.retry_after is not None and info.value.retry_after > 3600
        assert h.fake.credits_used() <= 10


async def test_429_reads_wait_and_retry() -> None:
    async with make_harness() as h:
        h.seed_deals(2)
        waits: list[float] = []

        async def no_sleep(seconds: float) -> None:
            waits.append(seconds)

        h.connector.client.sleep = no_sleep
        h.fake.rate_limit(2, retry_after=3)
        records, _ = await h.connector.client.list_page("Deals", ["Amount"], since_ms=None)
        assert len(records) == 2 and waits == [3.0, 3.0]


async def test_a_refreshed_token_refused_again_stops_the_connector() -> None:
    fake = FakeZoho(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=REFRESH, token_lifetime=0
    )
    ca = TestCA()
    with FakeServer(fake.app(), ca=ca) as server:
        client = ZohoClient(settings(server, ca))
        try:
            with pytest.raises(FatalError, match="freshly refreshed"):
                await client.list_page("Deals", ["Amount"], since_ms=None)
        finally:
            await client.aclose()
    assert fake.token_requests == 2  # the first token, and one refresh after INVALID_TOKEN
