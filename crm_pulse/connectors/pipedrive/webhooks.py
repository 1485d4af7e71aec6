"""Pipedrive webhooks v2: HTTP Basic credentials (required), then canonical events.

``verify`` checks the Basic credentials in constant time and that the body is a v2 webhook;
the request is stored and acknowledged at once (Pipedrive bans endpoints slower than 10 s and
then loses events). ``parse`` turns ``data`` into an upsert (or fetches the record when
``data`` is null) and ``delete`` actions into deletes; notifications already seen (same event
id) are skipped, and versions make repeats and reordering harmless. A merge arrives as a delete
of the merged-away record and a change of the survivor. When an organization's customer status
comes from its won deals, a deal change re-states its organization (and the one it left) only
if ``previous`` shows a change of status, won time or organization (or is absent).
"""

from __future__ import annotations

import base64
import hmac
import json
from collections import OrderedDict
from typing import Any

from ...errors import DataError, Unauthorized
from ...metrics.events import Event
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
        try:
            data = json.loads(request.body)
        except ValueError:
            raise DataError("Pipedrive webhook body is not JSON") from None
        meta = data.get("meta") if isinstance(data, dict) else None
        if not isinstance(meta, dict) or not str(meta.get("version", "")).startswith("2"):
            raise DataError("not a Pipedrive webhooks v2 body (meta.version 2.0 expected)")
        if meta.get("action") not in ("create", "change", "delete"):
            raise DataError(f"unknown webhook action {meta.get('action')!r}")
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
            if org and str(org) not in out:
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
            version = (to_ms(meta.get("timestamp")) or request.received_at_ms) + DELETE_TIE
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
            record = data.get("data") or await self.client.get(entity, rid)
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
