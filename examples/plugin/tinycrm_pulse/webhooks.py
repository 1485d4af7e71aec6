"""TinyCRM webhooks: ``X-Tiny-Signature: sha256=<hex>``, an HMAC-SHA256 of
``<X-Tiny-Timestamp>.<body>`` with the webhook secret; older than 5 minutes is refused. The body
carries the changed deal in full, so parsing needs no API call."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from crm_pulse.connectors import DataError, Event, ReceiverBase, Unauthorized, WebhookRequest

from .mapping import deal_event

MAX_AGE_S = 300


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class TinyCrmReceiver(ReceiverBase):
    max_body_bytes = 1024 * 1024

    def __init__(self, name: str, secret: str | None, path: str) -> None:
        self.name = name
        self._secret = secret
        self.path = path

    def verify(self, request: WebhookRequest) -> None:
        if self._secret is None:
            raise Unauthorized("no webhook_secret configured: webhooks are refused")
        given, timestamp = request.header("X-Tiny-Signature"), request.header("X-Tiny-Timestamp")
        if not given or not timestamp or not timestamp.isdigit():
            raise Unauthorized("missing X-Tiny-Signature or X-Tiny-Timestamp")
        if abs(time.time() - int(timestamp)) > MAX_AGE_S:
            raise Unauthorized("request timestamp is more than 5 minutes away")
        expected = signature(self._secret, timestamp, request.body)
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise Unauthorized("X-Tiny-Signature does not match the body and timestamp")

    async def parse(self, request: WebhookRequest) -> list[Event]:
        try:
            record = json.loads(request.body)["record"]
        except (ValueError, KeyError, TypeError):
            raise DataError('a TinyCRM webhook body is {"record": {...}}') from None
        return [deal_event(self.name, record)]
