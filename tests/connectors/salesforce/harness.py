"""Salesforce under the conformance suite: real simple-salesforce over HTTPS to FakeSalesforce."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from crm_pulse.connectors.protocols import FieldSpec, WebhookRequest
from crm_pulse.connectors.salesforce import SalesforceConnector
from crm_pulse.connectors.salesforce.settings import SalesforceSettings
from crm_pulse.sandbox.conformance import Harness
from crm_pulse.sandbox.salesforce import FakeSalesforce
from crm_pulse.sandbox.server import FakeServer, TestCA

SESSION = "00D000000000001!fake-session-for-tests"
ORG_ID = "00D000000000001AAA"
SECRET = "outbound-secret-for-tests"
FIELD = "Win_Rate__c"
PAGE = 200
"""A small query page, so 450 records take three pages linked by nextRecordsUrl."""


class SalesforceHarness(Harness):
    kind = "salesforce"
    faults = True
    records_per_call = 200

    def __init__(
        self, fake: FakeSalesforce, server: FakeServer, connector: SalesforceConnector
    ) -> None:
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
                    "Opportunity",
                    {
                        "Name": f"Deal {self._n}",
                        "Amount": float(100 + self._n),
                        "StageName": "Prospecting",
                        "CloseDate": "2026-12-31",
                        "OwnerId": f"005{self._n % 5:012d}AAA",
                        "Type": "New Customer",
                    },
                    modified_ms=at,
                )
            )
        return ids

    def seed_bad_deal(self) -> str:
        (deal,) = self.seed_deals(1)
        self.fake.records["Opportunity"][deal]["Amount"] = "not money"
        return deal

    def touch(self, deal_id: str) -> None:
        amount = float(self.fake.value("Opportunity", deal_id, "Amount") or 0)
        self.fake.update("Opportunity", deal_id, {"Amount": amount + 1})

    def delete(self, deal_id: str) -> None:
        self.fake.delete("Opportunity", deal_id)

    def writeback_target(self, deal_id: str) -> tuple[str, str, str]:
        return ("Opportunity", deal_id, FIELD)

    def field_value(self, object: str, record_id: str, field: str) -> Any:
        return self.fake.value(object, record_id, field)

    def write_calls(self) -> int:
        return self.fake.write_calls()

    def url(self, token: str = SECRET) -> str:
        return f"{self.server.url}/webhooks/salesforce?token={token}"

    def request(self, body: bytes, token: str = SECRET) -> WebhookRequest:
        return WebhookRequest(
            "POST", self.url(token), self.fake.outbound_headers(), body, int(time.time() * 1000)
        )

    def signed_webhook(self, deal_id: str) -> WebhookRequest:
        return self.request(self.fake.outbound_message("Opportunity", [deal_id]))

    def forged_webhook(self, deal_id: str) -> WebhookRequest:
        return self.request(self.fake.outbound_message("Opportunity", [deal_id]), "guessed")

    def rate_limit(self, requests: int, retry_after: float) -> None:
        # Salesforce refuses with 403 REQUEST_LIMIT_EXCEEDED and no Retry-After: the pause is
        # the connector's own setting, set here to the value the suite asks for.
        self.fake.refuse(requests)
        self.connector.client.limit_pause = retry_after

    def new_field(self) -> FieldSpec:
        return FieldSpec("Opportunity", "Conformance__c", "Conformance", unit="rate")

    def server_errors(self, requests: int) -> None:
        self.connector.client.sleep = _instant
        self.fake.fail(requests, 503)

    def slow_answers(self, requests: int) -> None:
        client = self.connector.client
        client.settings = client.settings.model_copy(update={"timeout": SLOW / 4})
        self.fake.stall(requests, SLOW)

    def exhaust_daily(self) -> None:
        self.fake.refuse(1_000_000)  # 403 REQUEST_LIMIT_EXCEEDED on every call

    def restore_daily(self) -> None:
        self.fake.refuse(0)


SLOW = 1.2
"""Seconds a slow answer takes (four times the client's timeout then)."""


async def _instant(seconds: float) -> None:
    return None


def settings(server: FakeServer, ca: TestCA, **extra: Any) -> SalesforceSettings:
    return SalesforceSettings.model_validate(
        {
            "instance_url": server.url,
            "session_id": SESSION,
            "ca_cert": str(ca.cert_path),
            "outbound_messages": {"organization_id": ORG_ID, "secret": SECRET},
            **extra,
        }
    )


@contextlib.asynccontextmanager
async def make_harness(
    *, fake: FakeSalesforce | None = None, **extra: Any
) -> AsyncIterator[SalesforceHarness]:
    ca = TestCA()
    fake = fake or FakeSalesforce(session_id=SESSION, organization_id=ORG_ID, page_size=PAGE)
    fake.add_field("Opportunity", FIELD)
    with FakeServer(fake.app(), ca=ca) as server:
        connector = SalesforceConnector("salesforce", settings(server, ca, **extra))
        try:
            yield SalesforceHarness(fake, server, connector)
        finally:
            await connector.aclose()
