"""The generic signed ingress under the conformance suite: its "CRM" is any sender, so the
harness plays the sender. It only receives, so the source, sink and provisioner checks are
skipped."""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator

from crm_pulse.connectors.events import EventsConnector, EventsSettings, sign
from crm_pulse.connectors.protocols import WebhookRequest
from crm_pulse.sandbox.conformance import Harness

SECRET = "ingress-secret-for-conformance"


class EventsHarness(Harness):
    kind = "events"

    def __init__(self, connector: EventsConnector) -> None:
        self.connector = connector
        self._ids = itertools.count(1)

    def seed_deals(self, n: int, *, same_modified_at: bool = False) -> list[str]:
        return [f"deal-{next(self._ids)}" for _ in range(n)]

    def _request(self, deal_id: str, secret: str) -> WebhookRequest:
        event = {
            "source": "erp",
            "object": "deal",
            "id": deal_id,
            "op": "upsert",
            "version": int(time.time() * 1000),
            "fields": {"amount": "10", "status": "open"},
        }
        body = json.dumps(event).encode()
        return WebhookRequest("POST", "http://127.0.0.1/events", sign(secret, body), body, 0)

    def signed_webhook(self, deal_id: str) -> WebhookRequest:
        return self._request(deal_id, SECRET)

    def forged_webhook(self, deal_id: str) -> WebhookRequest:
        return self._request(deal_id, "guessed-secret")


@contextlib.asynccontextmanager
async def make_harness() -> AsyncIterator[EventsHarness]:
    connector = EventsConnector("events", EventsSettings.model_validate({"secret": SECRET}))
    try:
        yield EventsHarness(connector)
    finally:
        await connector.aclose()
