"""Pipedrive webhooks v2: HTTP Basic credentials (required), then canonical events.

``verify`` checks the Basic credentials in constant time and that the body is a v2 webhook;
the request is stored and acknowledged at once (Pipedrive bans endpoints slower than 10 s and
then loses events). ``parse`` turns ``data`` into an upsert only when it holds every field the
mapping reads: webhooks v2 carry only essential fields, and a missing field is not an empty
one (mapped as empty, it would be kept: a later poll with the same ``update_time`` is dropped
as a repeat). Otherwise, or when ``data`` is null, the record is read
(``GET /api/v2/<entity>/<id>``, 1 token); ``delete`` actions become deletes; notifications already seen (same event
id) are skipped, and versions make repeats and reordering harmless. A merge arrives as a delete
of the merged-away record and a change of the survivor. When an organization's customer status
comes from its won deals, a deal change re-states its organization (and the one it left) only
if ``previous`` shows a change of status, won time or organization (or is absent).
"""

from __future__ import annotations

import base64
import hmac
from collections import OrderedDict
from typing import Any

from ...errors import DataError, Unauthorized
from ...metrics.events import Event
from .. import load_json
from ..protocols import ReceiverBase, WebhookRequest
from .client import PipedriveClient
from .mapping import CANONICAL, DELETE_TIE, FieldKeys, PipedriveMapper, to_ms

__all__ = ["PipedriveReceiver"]

_CUSTOMER_FIELDS = frozenset({"status", "won_time", "org_id", "is_deleted", "is_archived"})
"""Deal fields whose change can alter when its organization became a customer."""

_ENTITIES = {
    "deal": "deals",
    "person": "persons",
    "organization": "organizations",
    "activity": "activities",
}


def _numeric_id(value: Any) -> bool:
    """Pipedrive ids are positive integers (given as numbers or digit strings)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 < value < 10**18
    text = str(value)
    return text.isascii() and text.isdigit() and 0 < len(text) <= 18


def _meta_ms(value: Any) -> int | None:
    """``meta.timestamp`` in epoch ms: an RFC 3339 time, or epoch seconds or milliseconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value if value > 100_000_000_000 else value * 1000)
    if isinstance(value, str) and value.isdigit():
        return _meta_ms(int(value))
    try:
        return to_ms(value)
    except DataError:
        return None


class PipedriveReceiver(ReceiverBase):
    def __init__(
        self,
        client: PipedriveClient,
        mapper: PipedriveMapper,
        keys: FieldKeys,
        user: str | None,
        password: str | None,
        *,
        path: str = "/webhooks/pipedrive",
    ) -> None:
        self.client = client
        self.mapper = mapper
        self.keys = keys
        self._expected = (
            base64.b64encode(f"{user}:{password}".encode()).decode()
            if user is not None and password is not None
            else None
        )
        self.path = path
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.read_organizations = True

    def verify(self, request: WebhookRequest) -> None:
        if self._expected is None:
            raise Unauthorized("no webhook_user/webhook_password configured: webhooks are refused")
        auth = request.header("Authorization") or ""
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "basic" or not given:
            raise Unauthorized("no HTTP Basic credentials")
        if not hmac.compare_digest(given.strip().encode(), self._expected.encode()):
            raise Unauthorized("wrong HTTP Basic credentials")
        self._body(request)

    @staticmethod
    def _body(request: WebhookRequest) -> dict[str, Any]:
        data = load_json(request.body, what="Pipedrive webhook body")
        meta = data.get("meta") if isinstance(data, dict) else None
        if not isinstance(meta, dict) or not str(meta.get("version", "")).startswith("2"):
            raise DataError("not a Pipedrive webhooks v2 body (meta.version 2.0 expected)")
        if meta.get("action") not in ("create", "change", "delete"):
            raise DataError(f"unknown webhook action {str(meta.get('action'))[:40]!r}")
        record = data.get("data")
        if record is not None and not isinstance(record, dict):
            raise DataError("data is not an object")
        for where, value in (
            ("meta.entity_id", meta.get("entity_id")),
            ("data.id", record.get("id") if record else None),
        ):
            if value not in (None, "") and not _numeric_id(value):
                raise DataError(f"{where} is not a Pipedrive id (a positive integer)")
        return dict(data)

    def _affected_organizations(self, deal: dict[str, Any], previous: Any) -> list[str]:
        """Organizations whose customer status a deal change can alter: its organization, and
        the one it was moved away from. ``previous`` (the changed fields' old values) tells
        whether status, won time or organization changed at all; when Pipedrive sends none,
        the deal's organization is re-stated to be safe."""
        if not self.read_organizations:
            return []
        if isinstance(previous, dict) and not (_CUSTOMER_FIELDS & previous.keys()):
            return []  # a change of value, title, stage...: the customer status is the same
        orgs = [deal.get("org_id")]
        if isinstance(previous, dict):
            orgs.append(previous.get("org_id"))
        out: list[str] = []
        for org in orgs:
            if isinstance(org, dict):  # an expanded {id, name} object
                org = org.get("id")
            if org and _numeric_id(org) and str(org) not in out:
                out.append(str(org))
        return out

    async def parse(self, request: WebhookRequest) -> list[Event]:
        data = self._body(request)
        meta = data["meta"]
        entity = _ENTITIES.get(str(meta.get("entity")))
        if entity is None:
            return []  # an entity crm-pulse does not read
        event_id = str(meta.get("id") or "")
        if event_id and event_id in self._seen:
            return []
        rid = str(meta.get("entity_id") or (data.get("data") or {}).get("id") or "")
        if not rid:
            raise DataError("webhook names no record (meta.entity_id)")
        await self.keys.load(entity)
        if meta["action"] == "delete":
            # the same version a poll gives the deleted record (its update time, tie-broken)
            version = (_meta_ms(meta.get("timestamp")) or request.received_at_ms) + DELETE_TIE
            events = [
                Event(
                    source=self.mapper.source,
                    object=CANONICAL[entity],
                    id=rid,
                    op="delete",
                    version=version,
                )
            ]
        else:
            given = data.get("data")
            record = (
                given
                if isinstance(given, dict) and self.mapper.complete(entity, given)
                else await self.client.get(entity, rid)
            )
            if record is None:
                events = []
            elif entity == "organizations":
                events = [await self.mapper.organization_event(self.client, record)]
            else:
                events = [self.mapper.event(entity, record)]
                if entity == "deals" and self.mapper.derives_customer_since:
                    for org in self._affected_organizations(record, data.get("previous")):
                        found = await self.client.get("organizations", org)
                        if found is not None:
                            events.append(await self.mapper.organization_event(self.client, found))
        if event_id:
            self._seen[event_id] = None
            while len(self._seen) > 10_000:
                self._seen.popitem(last=False)
        return events
