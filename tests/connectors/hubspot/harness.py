"""HubSpot under the conformance suite: the real hubspot-api-client over HTTPS to FakeHubSpot.

For speed the harness turns off the search API's 5-per-second limit in the fake and the
client's pacing of it (``test_hubspot.py`` checks both with them on), and lists archived
records on every poll (``archived_every=0``) so that deletes show at once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from crm_pulse.connectors.hubspot import HubSpotConnector
from crm_pulse.connectors.hubspot.settings import HubSpotSettings
from crm_pulse.connectors.protocols import FieldSpec, WebhookRequest
from crm_pulse.sandbox.conformance import Harness
from crm_pulse.sandbox.hubspot import FakeHubSpot
from crm_pulse.sandbox.server import FakeServer, TestCA
from tests.connectors.hubspot.signing import headers_v3

TOKEN = "pat-na1-test-token"
APP_SECRET = "hubspot-app-secret-for-tests"
FIELD = "crm_pulse_win_rate"


class HubSpotHarness(Harness):
    kind = "hubspot"
    faults = True
    records_per_call = 100

    def __init__(self, fake: FakeHubSpot, server: FakeServer, connector: HubSpotConnector) -> None:
        self.fake = fake
        self.server = server
        self.connector = connector
        self._n = 0

    def seed_deals(self, n: int, *, same_modified_at: bool = False) -> list[str]:
        at = self.fake.now_ms() if same_modified_at else None
        ids = []
        for _ in range(n):
            self._n += 1
            ids.append(
                self.fake.create(
                    "deals",
                    {
                        "dealname": f"Deal {self._n}",
                        "amount": str(100 + self._n),
                        "dealstage": "appointmentscheduled",
                        "pipeline": "default",
                        "hubspot_owner_id": f"{self._n % 5}",
                        "dealtype": "newbusiness",
                    },
                    modified_ms=at,
                )
            )
        return ids

    def seed_bad_deal(self) -> str:
        (deal,) = self.seed_deals(1)
        self.fake.update("deals", deal, {"closedate": "not a date", "dealstage": "closedwon"})
        return deal

    def touch(self, deal_id: str) -> None:
        amount = float(self.fake.value("deals", deal_id, "amount") or 0)
        self.fake.update("deals", deal_id, {"amount": str(amount + 1)})

    def delete(self, deal_id: str) -> None:
        self.fake.archive("deals", deal_id)

    def writeback_target(self, deal_id: str) -> tuple[str, str, str]:
        return ("deals", deal_id, FIELD)

    def field_value(self, object: str, record_id: str, field: str) -> Any:
        return self.fake.value(object, record_id, field)

    def write_calls(self) -> int:
        return self.fake.write_calls()

    def _request(self, deal_id: str, secret: str) -> WebhookRequest:
        url = f"{self.server.url}/webhooks/hubspot"
        event = self.fake.change_event("deals", deal_id, propertyName="amount", propertyValue="1")
        ts = int(time.time() * 1000)
        _, body = self.fake.webhook(url, [event], timestamp_ms=ts)
        # signed by the tests' own implementation of HubSpot's rule, not the simulator's
        return WebhookRequest("POST", url, headers_v3(secret, "POST", url, body, ts), body, ts)

    def signed_webhook(self, deal_id: str) -> WebhookRequest:
        return self._request(deal_id, APP_SECRET)

    def forged_webhook(self, deal_id: str) -> WebhookRequest:
        return self._request(deal_id, "not-the-app-secret")

    def rate_limit(self, requests: int, retry_after: float) -> None:
        self.fake.rate_limit(requests, retry_after)

    def new_field(self) -> FieldSpec:
        return FieldSpec("deals", "crm_pulse_conformance", "Conformance", unit="rate")

    def server_errors(self, requests: int) -> None:
        self.connector.client.sleep = _instant
        self.fake.fail(requests, 502)

    def slow_answers(self, requests: int) -> None:
        self.connector.client.timeout = SLOW / 4
        self.fake.fail(requests, 0, delay=SLOW)

    def exhaust_daily(self) -> None:
        self.fake.exhaust_daily()

    def restore_daily(self) -> None:
        self.fake.reset_daily()


SLOW = 1.2
"""Seconds a slow answer takes (four times the client's timeout then)."""


async def _instant(seconds: float) -> None:
    return None


def settings(server: FakeServer, ca: TestCA, **extra: Any) -> HubSpotSettings:
    return HubSpotSettings.model_validate(
        {
            "access_token": TOKEN,
            "app_secret": APP_SECRET,
            "base_url": server.url,
            "ca_cert": str(ca.cert_path),
            "objects": ["companies", "contacts", "deals", "tickets"],
            **extra,
        }
    )


@contextlib.asynccontextmanager
async def make_harness(
    *, options: dict[str, Any] | None = None, search_limit: bool = False, **extra: Any
) -> AsyncIterator[HubSpotHarness]:
    ca = TestCA()
    fake = FakeHubSpot(TOKEN, app_secret=APP_SECRET)
    fake.add_property("deals", FIELD)
    if not search_limit:
        fake.search_per_second = None
    opts: dict[str, Any] = {"archived_every": 0.0, "search_per_second": None}
    opts.update(options or {})
    with FakeServer(fake.app(), ca=ca) as server:
        connector = HubSpotConnector("hubspot", settings(server, ca, **extra), **opts)
        try:
            yield HubSpotHarness(fake, server, connector)
        finally:
            await connector.aclose()
