"""HubSpot webhooks: v3 signature check, then the full records fetched with batch read.

``verify`` is fast and local (it never calls HubSpot): the v3 signature is
``base64(HMAC-SHA256(app secret, method + uri + body + timestamp))`` where ``uri`` is the URL
HubSpot called with a few percent-escapes decoded (the SDK's own ``Signature.is_valid`` does not
decode them); the timestamp must be at most five minutes old (or ahead); the comparison is
constant-time. A replay within those five minutes (same signature, same body) is recognised by
the runtime's inbox, which remembers stored requests durably and answers an exact repeat as a
duplicate without storing it (HubSpot's own retries are signed anew). Behind a proxy that terminates TLS the server sees
``http://``; the URL is also tried as ``https://`` and as ``X-Forwarded-Proto``/``-Host`` say.

The request is then stored and acknowledged; ``parse`` runs afterwards from the durable inbox
and may run twice for one request: it is idempotent. It de-duplicates the notifications, reads
the records they name with batch read (HubSpot's notifications are only hints: the record's
current state is what counts, so duplicated and out-of-order deliveries are harmless), and
emits canonical upserts, or deletes for deletions and for the losing side of a merge.

Both the legacy (``deal.propertyChange``) and the generic (``object.propertyChange`` with
``objectTypeId: 0-3``) subscription formats are understood.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ...errors import DataError, Unauthorized
from ...metrics.events import Event
from .. import load_json, reject
from ..protocols import BadRecord, ReceiverBase, WebhookRequest
from .client import HubSpotClient
from .mapping import HubSpotMapper, object_type_of
from .records import RecordMapper

__all__ = ["MAX_AGE_MS", "HubSpotReceiver", "signature_v3", "uri_for_signature"]

log = logging.getLogger("crm_pulse.hubspot")

MAX_AGE_MS = 5 * 60 * 1000
SIGNATURE = "X-HubSpot-Signature-v3"
TIMESTAMP = "X-HubSpot-Request-Timestamp"
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
_DELETIONS = {"deletion", "privacyDeletion"}


def uri_for_signature(uri: str, *, lower_case: bool = True) -> str:
    """The URL as HubSpot signs it: these escapes decoded (also written in lower case, unless
    ``lower_case`` is False), every other byte as sent."""
    for encoded, char in _DECODE:
        uri = uri.replace(encoded, char)
        if lower_case:
            uri = uri.replace(encoded.lower(), char)
    return uri


def signature_v3(
    secret: bytes, method: str, uri: str, body: bytes, timestamp: str, *, lower_case: bool = True
) -> str:
    decoded = uri_for_signature(uri, lower_case=lower_case)
    message = method.upper().encode() + decoded.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode()


def _candidate_urls(request: WebhookRequest) -> list[str]:
    """The URL as received, and as HubSpot may have called it through a TLS proxy."""
    urls = [request.url]
    parts = urlsplit(request.url)
    proto = (request.header("X-Forwarded-Proto") or "").split(",")[0].strip()
    host = (request.header("X-Forwarded-Host") or "").split(",")[0].strip()
    if proto or host:
        urls.append(
            urlunsplit(parts._replace(scheme=proto or parts.scheme, netloc=host or parts.netloc))
        )
    if parts.scheme == "http":
        urls.append(urlunsplit(parts._replace(scheme="https")))
    return list(dict.fromkeys(urls))


class HubSpotReceiver(ReceiverBase):
    def __init__(
        self,
        client: HubSpotClient,
        mapper: HubSpotMapper,
        app_secret: str | None,
        *,
        records: RecordMapper | None = None,
        objects: Sequence[str] | None = None,
        portal_id: int | None = None,
        path: str = "/webhooks/hubspot",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.mapper = mapper
        self.objects = set(objects) if objects is not None else set(mapper.fields)
        self.records = records or RecordMapper(client, mapper, sorted(self.objects))
        self._secret = app_secret.encode() if app_secret else None
        self.portal_id = portal_id
        self.path = path
        self.clock = clock

    # ------------------------------------------------------------ before the 2xx
    def verify(self, request: WebhookRequest) -> None:
        if self._secret is None:
            raise Unauthorized("no app_secret is configured for this HubSpot connector")
        given = request.header(SIGNATURE)
        timestamp = request.header(TIMESTAMP)
        if not given or not timestamp:
            raise Unauthorized(f"missing {SIGNATURE} or {TIMESTAMP}")
        if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 15:
            raise Unauthorized(f"{TIMESTAMP} is not milliseconds")
        if len(given) > 128:
            raise Unauthorized(f"{SIGNATURE} is not a v3 signature")
        now_ms = int(self.clock() * 1000)
        age = now_ms - int(timestamp)
        if age > MAX_AGE_MS:
            raise Unauthorized(f"request timestamp is {age / 1000:.0f} s old (limit 300 s)")
        if -age > MAX_AGE_MS:
            raise Unauthorized(f"request timestamp is {-age / 1000:.0f} s in the future")
        ok = False
        for url in _candidate_urls(request):
            # HubSpot's list of escapes is upper case; a lower-case one may or may not be decoded
            lower = any(encoded.lower() in url for encoded, _ in _DECODE)
            for lower_case in (True, False) if lower else (True,):
                expected = signature_v3(
                    self._secret,
                    request.method,
                    url,
                    request.body,
                    timestamp,
                    lower_case=lower_case,
                )
                ok = hmac.compare_digest(expected.encode(), given.encode()) or ok
        if not ok:
            raise Unauthorized(f"{SIGNATURE} does not match the method, URL, body and timestamp")
        notes = self._notifications(request)
        if self.portal_id is not None:
            others = {n.get("portalId") for n in notes} - {self.portal_id}
            if others:
                raise Unauthorized(f"notification for another portal ({sorted(map(str, others))})")

    @property
    def tolerance(self) -> float:
        """Seconds a signature stays valid (the runtime remembers stored requests longer)."""
        return MAX_AGE_MS / 1000

    @staticmethod
    def _notifications(request: WebhookRequest) -> list[dict[str, Any]]:
        data = load_json(request.body, what="HubSpot webhook body")
        if not isinstance(data, list) or not all(isinstance(n, dict) for n in data):
            raise DataError("HubSpot webhook body is not a JSON array of events")
        return data

    # ------------------------------------------------------------ after the 2xx
    def _object_type(self, note: dict[str, Any]) -> tuple[str | None, str]:
        kind, _, action = str(note.get("subscriptionType", "")).partition(".")
        if kind == "object":
            return object_type_of(str(note.get("objectTypeId", ""))), action
        return object_type_of(kind), action

    async def parse(self, request: WebhookRequest) -> list[Event]:
        notes = self._notifications(request)
        fetch: dict[str, set[str]] = {}
        deletes: dict[tuple[str, str], int] = {}
        restores: dict[tuple[str, str], int] = {}

        def read(object_type: str | None, rid: Any) -> None:
            if object_type in self.objects and _hubspot_id(rid):
                fetch.setdefault(object_type, set()).add(str(rid))

        def delete(object_type: str | None, rid: Any, at: int) -> None:
            if object_type in self.objects and _hubspot_id(rid):
                key = (object_type, str(rid))
                deletes[key] = max(at, deletes.get(key, 0))

        for note in notes:
            object_type, action = self._object_type(note)
            if object_type is None:
                continue  # a subscription crm-pulse does not use: nothing to count
            occurred = note.get("occurredAt")
            at = int(str(occurred)) if _hubspot_id(occurred) and len(str(occurred)) <= 14 else 0
            if action in _DELETIONS:
                delete(object_type, note.get("objectId"), at)
            elif action == "merge":
                survivor = note.get("newObjectId") or note.get("primaryObjectId")
                read(object_type, survivor)
                for gone in note.get("mergedObjectIds") or []:
                    if str(gone) != str(survivor):
                        delete(object_type, gone, at)
            elif action == "associationChange":
                # the association may be the deal's or ticket's company: read both ends
                read(object_type, note.get("fromObjectId"))
                to_type = _association_target(note)
                read(to_type, note.get("toObjectId"))
            else:  # creation, propertyChange, restore
                read(object_type, note.get("objectId"))
                if action == "restore":
                    key = (object_type, str(note.get("objectId")))
                    restores[key] = max(at, restores.get(key, 0))
        events: list[Event] = []
        if fetch:
            await self.records.pipelines()  # before reading: stages name properties to read
        for object_type, ids in sorted(fetch.items()):
            properties = self.mapper.properties(object_type)
            found = await self.client.batch_read(object_type, sorted(ids, key=int), properties)
            bad: list[BadRecord] = []
            for event in await self.records.events(object_type, found, bad):
                # a restored record outranks its deletion even if restoring left its
                # modification date as it was
                at = restores.get((object_type, event.id), 0)
                if event.op == "upsert" and at > event.version:
                    event = Event.model_validate({**event.model_dump(), "version": at})
                events.append(event)
            for record in bad:  # quarantined by the runtime with the request's events
                self.records.skip(str(record))
                reject(record)
        for (object_type, rid), at in sorted(deletes.items()):
            if at <= 0:
                self.records.skip(f"HubSpot {object_type} {rid}: deletion without occurredAt")
                continue
            events.append(self.mapper.delete_event(object_type, rid, at))
        return events


def _hubspot_id(value: Any) -> bool:
    """HubSpot record ids are positive integers (numbers or ASCII digit strings)."""
    if isinstance(value, bool):
        return False
    text = str(value) if isinstance(value, int | str) else ""
    return text.isascii() and text.isdigit() and 0 < len(text) <= 20


def _association_target(note: dict[str, Any]) -> str | None:
    """``DEAL_TO_COMPANY`` -> companies (the legacy format names the pair in one word)."""
    kind = str(note.get("associationType") or "")
    if "_TO_" in kind:
        return object_type_of(kind.split("_TO_", 1)[1].lower())
    to_type = note.get("toObjectTypeId")
    return object_type_of(str(to_type)) if to_type else None
