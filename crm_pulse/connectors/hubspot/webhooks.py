"""HubSpot webhooks: v3 signature check, then the full records fetched with batch read.

``verify`` is fast and local: the v3 signature is ``base64(HMAC-SHA256(app secret, method +
uri + body + timestamp))`` where ``uri`` is the URL HubSpot called with a few percent-escapes
decoded (the SDK's own check does not decode them), the timestamp must be at most five minutes
old, and the comparison is constant-time. The request is then stored and acknowledged; ``parse``
runs afterwards: it de-duplicates the notifications (HubSpot retries and may repeat), fetches the
records they name with batch read, and emits canonical upserts, or deletes for deletions.
Notifications arrive in any order; record versions make the order irrelevant.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from ...errors import DataError, Unauthorized
from ...metrics.events import Event
from ..protocols import WebhookRequest
from .client import HubSpotClient
from .mapping import OBJECTS, HubSpotMapper

__all__ = ["HubSpotReceiver", "signature_v3"]

MAX_AGE_MS = 5 * 60 * 1000
_DECODE = (
    ("%3A", ":"),
    ("%2F", "/"),
    ("%3F", "?"),
    ("%40", "@"),
    ("%21", "!"),
    ("%24", "$"),
    ("%27", "'"),
    ("%28", "("),
    ("%29", ")"),
    ("%2A", "*"),
    ("%2C", ","),
    ("%3B", ";"),
)
_TYPES = {"company": "companies", "contact": "contacts", "deal": "deals", "ticket": "tickets"}


def signature_v3(secret: bytes, method: str, uri: str, body: bytes, timestamp: str) -> str:
    for encoded, char in _DECODE:
        uri = uri.replace(encoded, char).replace(encoded.lower(), char)
    message = method.upper().encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode()


class HubSpotReceiver:
    def __init__(
        self,
        client: HubSpotClient,
        mapper: HubSpotMapper,
        app_secret: str | None,
        *,
        portal_id: int | None = None,
        path: str = "/webhooks/hubspot",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.mapper = mapper
        self._secret = app_secret.encode() if app_secret else None
        self.portal_id = portal_id
        self.path = path
        self.clock = clock

    def verify(self, request: WebhookRequest) -> None:
        if self._secret is None:
            raise Unauthorized("no app_secret is configured for this HubSpot connector")
        given = request.header("X-HubSpot-Signature-v3")
        timestamp = request.header("X-HubSpot-Request-Timestamp")
        if not given or not timestamp:
            raise Unauthorized("missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp")
        if not timestamp.isdigit():
            raise Unauthorized("X-HubSpot-Request-Timestamp is not milliseconds")
        age = self.clock() * 1000 - int(timestamp)
        if age > MAX_AGE_MS:
            raise Unauthorized(f"request timestamp is {age / 1000:.0f} s old (limit 300 s)")
        expected = signature_v3(self._secret, request.method, request.url, request.body, timestamp)
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise Unauthorized("X-HubSpot-Signature-v3 does not match")
        notes = self._notifications(request)
        if self.portal_id is not None:
            others = {n.get("portalId") for n in notes} - {self.portal_id}
            if others:
                raise Unauthorized(f"notification for another portal ({sorted(map(str, others))})")

    @staticmethod
    def _notifications(request: WebhookRequest) -> list[dict[str, Any]]:
        try:
            data = json.loads(request.body)
        except ValueError:
            raise DataError("HubSpot webhook body is not JSON") from None
        if not isinstance(data, list) or not all(isinstance(n, dict) for n in data):
            raise DataError("HubSpot webhook body is not a JSON array of events")
        return data

    async def parse(self, request: WebhookRequest) -> list[Event]:
        notes = self._notifications(request)
        seen: set[tuple[Any, ...]] = set()
        fetch: dict[str, set[str]] = {}
        deletes: dict[tuple[str, str], int] = {}
        for note in notes:
            key = (
                note.get("subscriptionType"),
                note.get("objectId"),
                note.get("occurredAt"),
                note.get("propertyName"),
            )
            if key in seen:
                continue  # HubSpot may deliver the same notification twice in one request
            seen.add(key)
            kind, _, action = str(note.get("subscriptionType", "")).partition(".")
            object_type = _TYPES.get(kind)
            rid = str(note.get("objectId", ""))
            if object_type is None or object_type not in self.mapper.fields or not rid:
                continue  # a subscription crm-pulse does not use: nothing to count
            if action in ("deletion", "privacyDeletion"):
                at = int(note.get("occurredAt") or 0)
                deletes[(object_type, rid)] = max(at, deletes.get((object_type, rid), 0))
            else:
                fetch.setdefault(object_type, set()).add(rid)
        events: list[Event] = []
        for object_type, ids in fetch.items():
            properties = self.mapper.properties(object_type)
            for record in await self.client.batch_read(object_type, sorted(ids), properties):
                events.append(self.mapper.event(object_type, record))
        for (object_type, rid), at in deletes.items():
            events.append(
                Event(
                    source=self.mapper.source,
                    object=OBJECTS[object_type].canonical,
                    id=rid,
                    op="delete",
                    version=at,
                )
            )
        return events
