"""Pipedrive under the conformance suite: our httpx client over real HTTP to FakePipedrive."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from crm_pulse.connectors.pipedrive import PipedriveConnector
from crm_pulse.connectors.pipedrive.settings import PipedriveSettings
from crm_pulse.connectors.protocols import FieldSpec, WebhookRequest
from crm_pulse.sandbox.conformance import Harness
from crm_pulse.sandbox.pipedrive import FakePipedrive
from crm_pulse.sandbox.server import FakeServer

TOKEN = "pd-api-token-for-tests"
HOOK_USER, HOOK_PASSWORD = "crm-pulse", "hook-password-for-tests"
FIELD = "Win rate"


class PipedriveHarness(Harness):
    kind = "pipedrive"
    faults = True
    records_per_call = 1

    def __init__(
        self, fake: FakePipedrive, server: FakeServer, connector: PipedriveConnector
    ) -> None:
        self.fake = fake
        self.server = server
        self.connector = connector
        self._n = 0

    def seed_deals(self, n: int, *, same_modified_at: bool = False) -> list[str]:
        at = int(time.time()) if same_modified_at else None
        ids = []
        for _ in range(n):
            self._n += 1
            data = {
                "title": f"Deal {self._n}",
                "value": 100 + self._n,
                "owner_id": self._n % 5,
                "org_id": 7,
                "stage_id": 1,
                "pipeline_id": 1,
            }
            ids.append(self.fake.create("deals", data, at=at))
        return ids

    def seed_bad_deal(self) -> str:
        (deal,) = self.seed_deals(1)
        # within Pipedrive's types (the answers are checked against them), not a time though
        self.fake.records["deals"][deal]["stage_change_time"] = "soon"
        return deal

    def touch(self, deal_id: str) -> None:
        value = self.fake.records["deals"][deal_id]["value"]
        self.fake.update("deals", deal_id, {"value": value + 1})

    def delete(self, deal_id: str) -> None:
        self.fake.delete("deals", deal_id)

    def writeback_target(self, deal_id: str) -> tuple[str, str, str]:
        return ("deal", deal_id, FIELD)

    def field_value(self, object: str, record_id: str, field: str) -> Any:
        return self.fake.custom_value("deals", record_id, field)

    def write_calls(self) -> int:
        return self.fake.write_calls()

    def _request(self, deal_id: str, password: str) -> WebhookRequest:
        headers, body = self.fake.webhook("change", "deals", deal_id, password=password)
        return WebhookRequest(
            "POST", f"{self.server.url}/webhooks/pipedrive", headers, body, int(time.time() * 1000)
        )

    def signed_webhook(self, deal_id: str) -> WebhookRequest:
        return self._request(deal_id, HOOK_PASSWORD)

    def forged_webhook(self, deal_id: str) -> WebhookRequest:
        return self._request(deal_id, "guessed-password")

    def rate_limit(self, requests: int, retry_after: float) -> None:
        self.fake.rate_limit(requests, retry_after)

    def new_field(self) -> FieldSpec:
        return FieldSpec("deal", "Conformance score", "Conformance score")

    def server_errors(self, requests: int) -> None:
        self.connector.client.sleep = _instant
        self.fake.fail(requests, 503)

    def slow_answers(self, requests: int) -> None:
        self.connector.client.http.timeout = httpx.Timeout(SLOW / 4)
        self.fake.fail(requests, 0, delay=SLOW)

    def exhaust_daily(self) -> None:
        self.fake.exhaust_daily()

    def restore_daily(self) -> None:
        self.fake.reset_daily()
        self.connector.client.budget.daily_left = None  # a new day: the client asks again


SLOW = 1.2
"""Seconds a slow answer takes (four times the client's timeout then)."""


async def _instant(seconds: float) -> None:
    return None


@contextlib.asynccontextmanager
async def make_harness(**extra: Any) -> AsyncIterator[PipedriveHarness]:
    fake = FakePipedrive(
        TOKEN,
        webhook_user=HOOK_USER,
        webhook_password=HOOK_PASSWORD,
        burst=extra.pop("burst", 100_000),
    )
    fake.add_field("deals", FIELD)
    with FakeServer(fake.app()) as server:
        settings = PipedriveSettings.model_validate(
            {
                "api_token": TOKEN,
                "base_url": server.url,
                "webhook_user": HOOK_USER,
                "webhook_password": HOOK_PASSWORD,
                "objects": ["deals", "organizations"],
                **extra,
            }
        )
        connector = PipedriveConnector("pipedrive", settings)
        try:
            yield PipedriveHarness(fake, server, connector)
        finally:
            await connector.aclose()
