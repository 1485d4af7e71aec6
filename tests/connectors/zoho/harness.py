"""Zoho CRM under the shipped conformance suite: our httpx client over real HTTPS to FakeZoho."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from crm_pulse.connectors.protocols import FieldSpec, WebhookRequest
from crm_pulse.connectors.zoho import ZohoConnector
from crm_pulse.connectors.zoho.settings import ZohoSettings
from crm_pulse.sandbox.conformance import Harness
from crm_pulse.sandbox.server import FakeServer, TestCA
from crm_pulse.sandbox.zoho import FakeZoho

CLIENT_ID, CLIENT_SECRET, REFRESH = "1000.CLIENTFORTESTS", "zoho-secret-for-tests", "1000.rt.tests"
CHANNEL_TOKEN = "channel-token-for-tests"
FIELD = "Win rate"
ACCOUNT = {"name": "ACME", "id": "5725767000000300001"}


async def _instant(seconds: float) -> None:
    return None


SLOW = 1.2


class ZohoHarness(Harness):
    kind = "zoho"
    records_per_call = 100
    faults = True

    def __init__(self, fake: FakeZoho, server: FakeServer, connector: ZohoConnector) -> None:
        self.fake = fake
        self.server = server
        self.connector = connector
        self._n = 0

    def seed_deals(self, n: int, *, same_modified_at: bool = False) -> list[str]:
        at = float(int(time.time())) if same_modified_at else None
        ids = []
        for _ in range(n):
            self._n += 1
            data = {
                "Deal_Name": f"Deal {self._n}",
                "Amount": 100 + self._n,
                "Stage": "Qualification",
                "Owner": {"name": "Rep", "id": str(5725767000000200000 + self._n % 5)},
                "Account_Name": ACCOUNT,
            }
            ids.append(self.fake.create("Deals", data, at=at))
        return ids

    def seed_bad_deal(self) -> str:
        (deal,) = self.seed_deals(1)
        self.fake.records["Deals"][deal]["Amount"] = "n/a"
        return deal

    def touch(self, deal_id: str) -> None:
        amount = self.fake.records["Deals"][deal_id]["Amount"]
        self.fake.update("Deals", deal_id, {"Amount": amount + 1})

    def delete(self, deal_id: str) -> None:
        self.fake.delete("Deals", deal_id)

    def writeback_target(self, deal_id: str) -> tuple[str, str, str]:
        return ("deal", deal_id, FIELD)

    def field_value(self, object: str, record_id: str, field: str) -> Any:
        return self.fake.value("Deals", record_id, field)

    def write_calls(self) -> int:
        return self.fake.write_calls()

    def _request(self, deal_id: str, token: str | None) -> WebhookRequest:
        headers, body = self.fake.notification("Deals", "update", [deal_id], token=token)
        return WebhookRequest(
            "POST", f"{self.server.url}/webhooks/zoho", headers, body, int(time.time() * 1000)
        )

    def signed_webhook(self, deal_id: str) -> WebhookRequest:
        return self._request(deal_id, None)

    def forged_webhook(self, deal_id: str) -> WebhookRequest:
        return self._request(deal_id, "guessed-token")

    def rate_limit(self, requests: int, retry_after: float) -> None:
        self.fake.rate_limit(requests, retry_after)

    def server_errors(self, requests: int) -> None:
        self.connector.client.sleep = _instant
        self.fake.fail(requests, 500)

    def slow_answers(self, requests: int) -> None:
        self.connector.client.sleep = _instant
        self.connector.client.http.timeout = httpx.Timeout(SLOW / 4)
        self.fake.fail(requests, 0, delay=SLOW)

    def exhaust_daily(self) -> None:
        self.connector.client.sleep = _instant
        self.fake.exhaust_daily()

    def restore_daily(self) -> None:
        self.fake.restore_daily()

    def new_field(self) -> FieldSpec:
        return FieldSpec("deal", "Conformance score", "Conformance score")


def settings(server: FakeServer, ca: TestCA, **extra: Any) -> ZohoSettings:
    return ZohoSettings.model_validate(
        {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH,
            "api_url": server.url,
            "accounts_url": server.url,
            "ca_cert": str(ca.cert_path),
            "notify_url": f"{server.url}/webhooks/zoho",
            "channel_token": CHANNEL_TOKEN,
            "daily_credits": 1_000_000,
            "objects": ["Accounts", "Deals"],
            **extra,
        }
    )


@contextlib.asynccontextmanager
async def make_harness(*, fake: FakeZoho | None = None, **extra: Any) -> AsyncIterator[ZohoHarness]:
    # the channel's notify_url is the fake itself here: no deliveries of our own writes
    fake = fake or FakeZoho(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH,
        notify_api_writes=False,
    )
    fake.add_field("Deals", FIELD)
    ca = TestCA()
    with FakeServer(fake.app(), ca=ca) as server:
        connector = ZohoConnector("zoho", settings(server, ca, **extra))
        try:
            if connector.channel is not None:
                await connector.channel.ensure()  # the notification channel is open
            yield ZohoHarness(fake, server, connector)
        finally:
            await connector.aclose()
