"""TinyCRM under crm-pulse's conformance suite: the connector, built against the simulator."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from tinycrm_pulse import TinyCrmConnector, TinyCrmSettings
from tinycrm_pulse.simulator import TinyCrmSimulator

from crm_pulse.connectors import FieldSpec, WebhookRequest
from crm_pulse.sandbox import FakeServer
from crm_pulse.sandbox.conformance import Harness

API_KEY, HOOK_SECRET, FIELD = "tiny-key-for-tests", "tiny-hook-secret", "crm_pulse_score"


class TinyCrmHarness(Harness):
    kind = "tinycrm"
    records_per_call = 50

    def __init__(self, sim: TinyCrmSimulator, connector: TinyCrmConnector) -> None:
        self.sim = sim
        self.connector = connector

    def seed_deals(self, n: int, *, same_modified_at: bool = False) -> list[str]:
        at = int(time.time() * 1000) if same_modified_at else None
        data = {"amount": "100", "status": "open", "owner": "u1", "company": "c1"}
        return [self.sim.create("deals", dict(data), at=at) for _ in range(n)]

    def seed_bad_deal(self) -> str:
        return self.sim.create("deals", {"amount": "100", "status": "pending", "owner": "u1"})

    def touch(self, deal_id: str) -> None:
        amount = float(self.sim.records["deals"][deal_id]["amount"])
        self.sim.update("deals", deal_id, {"amount": str(amount + 1)})

    def delete(self, deal_id: str) -> None:
        self.sim.delete("deals", deal_id)

    def writeback_target(self, deal_id: str) -> tuple[str, str, str]:
        return ("deals", deal_id, FIELD)

    def field_value(self, object: str, record_id: str, field: str) -> Any:
        return self.sim.value(object, record_id, field)

    def write_calls(self) -> int:
        return self.sim.write_requests

    def _request(self, deal_id: str, secret: str) -> WebhookRequest:
        headers, body = self.sim.webhook(deal_id, secret=secret)
        return WebhookRequest("POST", "http://127.0.0.1/webhooks/tinycrm", headers, body, 0)

    def signed_webhook(self, deal_id: str) -> WebhookRequest:
        return self._request(deal_id, HOOK_SECRET)

    def forged_webhook(self, deal_id: str) -> WebhookRequest:
        return self._request(deal_id, "guessed")

    def rate_limit(self, requests: int, retry_after: float) -> None:
        self.sim.rate_limit(requests, retry_after)

    def new_field(self) -> FieldSpec:
        return FieldSpec("deals", "crm_pulse_new_field", "New field")


@contextlib.asynccontextmanager
async def make_harness() -> AsyncIterator[TinyCrmHarness]:
    sim = TinyCrmSimulator(API_KEY, HOOK_SECRET)
    sim.add_field("deals", FIELD)
    with FakeServer(sim.app()) as server:
        settings = TinyCrmSettings.model_validate(
            {"base_url": server.url, "api_key": API_KEY, "webhook_secret": HOOK_SECRET}
        )
        connector = TinyCrmConnector("tinycrm", settings)
        try:
            yield TinyCrmHarness(sim, connector)
        finally:
            await connector.aclose()
