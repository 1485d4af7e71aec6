"""Salesforce Outbound Messages: the push path, with polling as the safety net.

Why Outbound Messages rather than Change Data Capture: they are plain HTTPS POSTs to our server
(no gRPC/Avro Pub/Sub client, no replay-id store), Salesforce retries them for up to 24 hours
until acknowledged, and they need only a workflow or flow in the org. They may repeat and
arrive out of order, which record versions make harmless, and they carry no authentication of
their own: we require the org id and a shared secret in the endpoint URL
(``https://<host>/webhooks/salesforce?token=<secret>``), compared in constant time.

``verify`` checks both and that the SOAP body is well formed; the request is stored and
acknowledged with the SOAP ``<Ack>true</Ack>`` Salesforce expects (:meth:`ack_response`). ``parse``
then re-reads the announced records by id (the message carries only the fields the admin chose),
and emits deletes for ids that are gone.
"""

from __future__ import annotations

import hmac
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

from ...errors import DataError, Unauthorized
from ...metrics.events import Event
from ..protocols import WebhookRequest
from .client import SalesforceClient
from .mapping import SalesforceMapper

__all__ = ["ACK", "OutboundMessageReceiver"]

_NS = {
    "soap": "http://schemas.xmlsoap.org/soap/envelope/",
    "om": "http://soap.sforce.com/2005/09/outbound",
    "sf": "urn:sobject.enterprise.soap.sforce.com",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
ACK = (
    b'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    b'<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack>'
    b"</notificationsResponse></soapenv:Body></soapenv:Envelope>"
)


def _org(org_id: str) -> str:
    return org_id[:15]  # 15- and 18-character ids name the same org


class OutboundMessageReceiver:
    def __init__(
        self,
        client: SalesforceClient,
        mapper: SalesforceMapper,
        organization_id: str,
        secret: str,
        *,
        path: str = "/webhooks/salesforce",
    ) -> None:
        self.client = client
        self.mapper = mapper
        self.organization_id = organization_id
        self._secret = secret.encode()
        self.path = path

    def _parse(self, request: WebhookRequest) -> tuple[str, list[tuple[str, str]]]:
        try:
            root = ET.fromstring(request.body)
        except ET.ParseError:
            raise DataError("Outbound Message body is not XML") from None
        notes = root.find("soap:Body/om:notifications", _NS)
        if notes is None:
            raise DataError("not a Salesforce Outbound Message (no notifications element)")
        org = notes.findtext("om:OrganizationId", default="", namespaces=_NS)
        items: list[tuple[str, str]] = []
        for note in notes.findall("om:Notification", _NS):
            sobj = note.find("om:sObject", _NS)
            if sobj is None:
                raise DataError("an Outbound Message notification has no sObject")
            kind = (sobj.get(f"{{{_NS['xsi']}}}type") or "").split(":")[-1]
            rid = sobj.findtext("sf:Id", default="", namespaces=_NS)
            if not kind or not rid:
                raise DataError("an Outbound Message notification has no sObject type or Id")
            items.append((kind, rid))
        return org, items

    def verify(self, request: WebhookRequest) -> None:
        tokens = parse_qs(urlsplit(request.url).query).get("token", [])
        if not tokens:
            raise Unauthorized(
                "no token in the endpoint URL (register .../webhooks/salesforce?token=<secret>)"
            )
        if not hmac.compare_digest(tokens[0].encode(), self._secret):
            raise Unauthorized("wrong token in the endpoint URL")
        org, _ = self._parse(request)
        if _org(org) != _org(self.organization_id):
            raise Unauthorized(f"message from another organization ({org[:15]})")

    def ack_response(self, request: WebhookRequest) -> tuple[str, bytes]:
        return "text/xml; charset=utf-8", ACK

    async def parse(self, request: WebhookRequest) -> list[Event]:
        _, items = self._parse(request)
        by_type: dict[str, set[str]] = {}
        for kind, rid in items:
            if kind in self.mapper.specs:
                by_type.setdefault(kind, set()).add(rid)
        events: list[Event] = []
        for sobject, ids in by_type.items():
            quoted = ", ".join(f"'{i}'" for i in sorted(ids) if i.isalnum())
            fields = ", ".join(self.mapper.soql_fields(sobject))
            data = await self.client.query(f"SELECT {fields} FROM {sobject} WHERE Id IN ({quoted})")
            found = {str(r["Id"]): r for r in data.get("records") or []}
            events.extend(self.mapper.event(sobject, r) for r in found.values())
            missing = sorted(ids - set(found))
            if missing:
                quoted = ", ".join(f"'{i}'" for i in missing if i.isalnum())
                gone = await self.client.query(
                    f"SELECT Id, SystemModstamp, IsDeleted FROM {sobject} WHERE Id IN ({quoted})",
                    include_deleted=True,
                )
                events.extend(self.mapper.event(sobject, r) for r in gone.get("records") or [])
        return events
