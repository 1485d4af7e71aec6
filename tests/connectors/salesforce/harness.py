"""Salesforce under the conformance suite: real simple-salesforce over HTTPS to FakeSalesforce."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from crm_pulse.config.models import SalesforceSettings
from crm_pulse.connectors.protocols import WebhookRequest
from crm_pulse.connectors.salesforce import SalesforceConnector
from crm_pulse.connectors.salesforce.fake import FakeSalesforce
from crm_pulse.connectors.testing import FakeServer, TestCA

SESSION = "00Dfake!AQ0AQ.session-for-tests"
ORG = "00D000000000001AAA"
OM_SECRET = "outbound-message-secret-42"
FIELD = "Win_Rate__c"


class SalesforceHarness:
    kind = "salesforce"
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
                        "Amount": 100.0 + self._n,
                        "StageName": "Prospecting",
                        "IsClosed": False,
                        "IsWon": False,
                        "OwnerId": f"005{self._n % 5:015d}",
                        "Type": "New Customer",
                    },
                    modstamp_ms=at,
                )
            )
        return ids

    def touch(self, deal_id: str) -> None:
        self.fake.update(
            "Opportunity",
            deal_id,
            {"Amount": float(self.fake.value("Opportunity", deal_id, "Amount")) + 1},
        )

    def delete(self, deal_id: str) -> None:
        self.fake.delete("Opportunity", deal_id)

    def writeback_target(self, deal_id: str) -> tuple[str, str, str]:
        return ("Opportunity", deal_id, FIELD)

    def field_value(self, object: str, record_id: str, field: str) -> Any:
        return self.fake.value(object, record_id, field)

    def write_calls(self) -> int:
        return self.fake.write_calls()

    def _request(self, deal_id: str, token: str) -> WebhookRequest:
        body = self.fake.outbound_message("Opportunity", [deal_id])
        url = f"{self.server.url}/webhooks/salesforce?token={token}"
        return WebhookRequest(
            "POST",
            url,
            {"Content-Type": "text/xml", "SOAPAction": '""'},
            body,
            int(time.time() * 1000),
        )

    def signed_webhook(self, deal_id: str) -> WebhookRequest:
        return self._request(deal_id, OM_SECRET)

    def forged_webhook(self, deal_id: str) -> WebhookRequest:
        return self._request(deal_id, "guessed")

    def rate_limit(self, requests: int, retry_after: float) -> None:
        self.fake.rate_limit(requests, retry_after)


def settings(server: FakeServer, ca: TestCA, **extra: Any) -> SalesforceSettings:
    return SalesforceSettings.model_validate(
        {
            "instance_url": server.url,
            "session_id": SESSION,
            "ca_cert": str(ca.cert_path),
            "objects": ["Account", "Opportunity", "Case"],
            "outbound_messages": {"organization_id": ORG, "secret": OM_SECRET},
            **extra,
        }
    )


@contextlib.asynccontextmanager
async def make_harness(**extra: Any) -> AsyncIterator[SalesforceHarness]:
    ca = TestCA()
    fake = FakeSalesforce(SESSION, org_id=ORG)
    fake.add_field("Opportunity", FIELD)
    with FakeServer(fake.app(), ca=ca) as server:
        connector = SalesforceConnector("salesforce", settings(server, ca, **extra))
        try:
            yield SalesforceHarness(fake, server, connector)
        finally:
            await connector.aclose()
