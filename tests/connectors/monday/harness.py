"""monday under the conformance suite: our httpx client over real HTTP to FakeMonday."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from crm_pulse.connectors.monday import MondayConnector
from crm_pulse.connectors.monday.settings import MondaySettings
from crm_pulse.connectors.protocols import FieldSpec, WebhookRequest
from crm_pulse.sandbox.conformance import Harness
from crm_pulse.sandbox.monday import FakeMonday
from crm_pulse.sandbox.server import FakeServer, TestCA

TOKEN = "monday-api-token-for-tests"
SIGNING_SECRET = "monday-signing-secret-for-tests-0123456789"
FIELD = "Win rate"
HOOK_URL = "https://pulse.example.com/webhooks/monday"


class MondayHarness(Harness):
    kind = "monday"
    records_per_call = 1
    deletes = True
    rate_limits = True
    faults = True

    def __init__(self, fake: FakeMonday, server: FakeServer, connector: MondayConnector) -> None:
        self.fake = fake
        self.server = server
        self.connector = connector
        self.deals = fake.add_board("Deals", "deals")
        self.accounts = fake.add_board("Accounts", "accounts")
        fake.add_column(self.deals, FIELD)
        self._n = 0

    def seed_deals(self, n: int, *, same_modified_at: bool = False) -> list[str]:
        at = int(time.time()) if same_modified_at else None
        ids = []
        for _ in range(n):
            self._n += 1
            values = {"Deal value": 100 + self._n, "Owner": self._n % 5 + 1, "Deal stage": "New"}
            ids.append(self.fake.create_item(self.deals, f"Deal {self._n}", values, at=at))
        return ids

    def seed_bad_deal(self) -> str:
        (deal,) = self.seed_deals(1)
        column = self.fake.column(self.deals, "Deal value")["id"]
        self.fake.items[deal]["values"][column] = "not money"
        return deal

    def touch(self, deal_id: str) -> None:
        value = float(self.fake.value(deal_id, "Deal value"))
        self.fake.update_item(deal_id, {"Deal value": value + 1})

    def delete(self, deal_id: str) -> None:
        self.fake.delete_item(deal_id)

    def writeback_target(self, deal_id: str) -> tuple[str, str, str]:
        return ("deal", deal_id, FIELD)

    def field_value(self, object: str, record_id: str, field: str) -> Any:
        return self.fake.value(record_id, field)

    def write_calls(self) -> int:
        return self.fake.write_calls()

    def _request(self, deal_id: str, secret: str) -> WebhookRequest:
        headers, body = self.fake.webhook(
            "update_column_value", deal_id, url=HOOK_URL, secret=secret, column_title="Deal value"
        )
        return WebhookRequest("POST", HOOK_URL, headers, body, int(time.time() * 1000))

    def signed_webhook(self, deal_id: str) -> WebhookRequest:
        return self._request(deal_id, SIGNING_SECRET)

    def forged_webhook(self, deal_id: str) -> WebhookRequest:
        return self._request(deal_id, "a-guessed-signing-secret-0123456789abc")

    def rate_limit(self, requests: int, retry_after: float) -> None:
        self.fake.rate_limit(requests, retry_after)

    def new_field(self) -> FieldSpec:
        return FieldSpec(object="deal", name="Pulse score", label="Pulse score")

    def server_errors(self, requests: int) -> None:
        self.connector.client.sleep = _instant
        self.fake.fail(requests, 500)

    def slow_answers(self, requests: int) -> None:
        self.connector.client.sleep = _instant
        self.connector.client.http.timeout = httpx.Timeout(SLOW / 4)
        self.fake.fail(requests, 0, delay=SLOW)

    def exhaust_daily(self) -> None:
        # monday resets the daily limit at midnight UTC; the check must not meet a midnight
        self.fake.exhaust_daily(until=time.time() + 6 * 3600)

    def restore_daily(self) -> None:
        self.fake.reset_daily()


SLOW = 1.2
"""Seconds a slow answer takes (four times the client's timeout then)."""


async def _instant(seconds: float) -> None:
    return None


CA = TestCA()
"""One throw-away CA for every monday test: the fake serves HTTPS like monday."""


def settings(url: str, **extra: Any) -> MondaySettings:
    return MondaySettings.model_validate(
        {
            "api_token": TOKEN,
            "ca_cert": str(CA.cert_path),
            "base_url": f"{url}/v2",
            "boards": {"deals": {"id": "1000001"}, "accounts": {"id": "1000002"}},
            "signing_secret": SIGNING_SECRET,
            "webhook_url": HOOK_URL,
            "reconcile_every": "0s",
            **extra,
        }
    )


@contextlib.asynccontextmanager
async def make_harness(**extra: Any) -> AsyncIterator[MondayHarness]:
    fake = FakeMonday(TOKEN, signing_secret=SIGNING_SECRET, budget=extra.pop("budget", 10**9))
    with FakeServer(fake.app(), ca=CA) as server:
        connector = MondayConnector("monday", settings(server.url, **extra))
        try:
            yield MondayHarness(fake, server, connector)
        finally:
            await connector.aclose()
