"""Salesforce Outbound Messages: a SOAP endpoint that checks the org and a shared secret.

An Outbound Message (sent by a Flow or workflow rule) is a SOAP POST of up to 100
notifications; each carries the record's id and the fields the admin selected, so ``parse`` maps
them without calling Salesforce. Checks, in ``verify`` (fast, local):

1. the shared secret, as the ``token`` query parameter of the endpoint URL configured in
   Salesforce (compared in constant time, before the body is parsed);
2. the body is a SOAP ``notifications`` message without DTDs or entities (malformed: DataError);
3. its ``OrganizationId`` is the configured org (15-character prefix: 15- and 18-character ids
   name the same org).

A notification lacking a field Salesforce always fills (SystemModstamp, CreatedDate, OwnerId,
StageName, ...) comes from a message set up without every mapped field: its records are read by
id instead (those gone become deletes), so a half-filled message never becomes a record's state.

Salesforce retries a message until it gets the SOAP acknowledgement (:data:`ACK`, see
:meth:`OutboundMessageReceiver.ack_response`) for up to 24 hours, may deliver one twice and may
reorder them. Each notification becomes an upsert whose version is the record's
``SystemModstamp``, so repeats and reordering change nothing. Outbound Messages carry no change
origin: our own writes are recognised by their content instead (write-back fields are not
canonical, so their echo is a no-op). They carry no deletes either: polling (``queryAll``)
brings those, and is the safety net for anything not delivered.
"""

from __future__ import annotations

import hmac
import logging
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ...errors import DataError, Unauthorized
from ...metrics.events import Event
from .. import reject
from ..protocols import BadRecord, ReceiverBase, WebhookRequest
from .client import SalesforceClient
from .mapping import MODSTAMP, SalesforceMapper
from .settings import OutboundMessages

__all__ = [
    "ACK",
    "ACK_CONTENT_TYPE",
    "NS_OUTBOUND",
    "NS_SOAP",
    "NS_SOBJECT",
    "Notification",
    "OutboundMessageReceiver",
    "is_record_id",
    "parse_notifications",
]

log = logging.getLogger("crm_pulse.salesforce")

SKIPPED_KEPT = 100
"""How many of the latest unmapped records are kept for inspection (each is also logged)."""

NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS_OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
NS_SOBJECT = "urn:sobject.enterprise.soap.sforce.com"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
MAX_NOTIFICATIONS = 100
ALWAYS_SET: dict[str, frozenset[str]] = {
    "Account": frozenset({"OwnerId", "CreatedDate"}),
    "Contact": frozenset({"OwnerId", "CreatedDate"}),
    "Lead": frozenset({"OwnerId", "CreatedDate", "IsConverted"}),
    "Opportunity": frozenset({"OwnerId", "CreatedDate", "StageName", "IsClosed", "IsWon"}),
    "Case": frozenset({"OwnerId", "CreatedDate", "IsClosed"}),
    "Task": frozenset({"OwnerId", "CreatedDate"}),
    "Event": frozenset({"OwnerId"}),
}
"""Fields Salesforce never leaves empty (Outbound Messages omit empty fields): a notification
without one of them was configured without every mapped field."""

ACK_CONTENT_TYPE = "text/xml; charset=utf-8"
ACK = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<soapenv:Body>"
    b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
    b"<Ack>true</Ack>"
    b"</notificationsResponse>"
    b"</soapenv:Body>"
    b"</soapenv:Envelope>\n"
)
"""The acknowledgement Salesforce needs, or it sends the message again."""


@dataclass(frozen=True)
class Notification:
    """One notification: its id, the sObject type, and the record's fields (text or None)."""

    id: str
    sobject: str
    record: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Message:
    organization_id: str
    notifications: list[Notification]


def _parse(body: bytes) -> _Message:
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise DataError("Outbound Message bodies have no DTD or entities", where="SOAP body")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise DataError(f"not XML ({exc})", where="SOAP body") from None
    node = root.find(f"{{{NS_SOAP}}}Body/{{{NS_OUTBOUND}}}notifications")
    if root.tag != f"{{{NS_SOAP}}}Envelope" or node is None:
        raise DataError("not a SOAP Envelope with an Outbound Message notifications element")
    org = (node.findtext(f"{{{NS_OUTBOUND}}}OrganizationId") or "").strip()
    notes: list[Notification] = []
    for i, note in enumerate(node.findall(f"{{{NS_OUTBOUND}}}Notification")):
        where = f"Notification {i + 1}"
        sobj = note.find(f"{{{NS_OUTBOUND}}}sObject")
        if sobj is None:
            raise DataError("no sObject", where=where)
        xsi_type = sobj.get(f"{{{NS_XSI}}}type") or ""
        sobject = xsi_type.rpartition(":")[2]
        if not sobject:
            raise DataError("sObject has no xsi:type naming its object", where=where)
        record: dict[str, Any] = {}
        for child in sobj:
            name = child.tag.rpartition("}")[2]
            nil = (child.get(f"{{{NS_XSI}}}nil") or "").lower() == "true"
            record[name] = None if nil else (child.text or "")
        rid = record.get("Id")
        if rid is not None and not is_record_id(rid):
            raise DataError(
                "sObject Id is not a Salesforce id (15 or 18 letters and digits)", where
            )
        notes.append(
            Notification((note.findtext(f"{{{NS_OUTBOUND}}}Id") or "").strip(), sobject, record)
        )
    if len(notes) > MAX_NOTIFICATIONS:
        raise DataError(f"{len(notes)} notifications; Salesforce sends at most 100")
    return _Message(org, notes)


def is_record_id(value: str) -> bool:
    """A Salesforce record id: 15 or 18 ASCII letters and digits."""
    return len(value) in (15, 18) and value.isascii() and value.isalnum()


def parse_notifications(body: bytes) -> tuple[str, list[Notification]]:
    """(OrganizationId, notifications) of an Outbound Message; DataError if malformed."""
    message = _parse(body)
    return message.organization_id, message.notifications


class OutboundMessageReceiver(ReceiverBase):
    """The :class:`~crm_pulse.connectors.protocols.WebhookReceiver` for Outbound Messages."""

    def __init__(
        self,
        mapper: SalesforceMapper,
        config: OutboundMessages | None,
        *,
        path: str = "/webhooks/salesforce",
        client: SalesforceClient | None = None,
    ) -> None:
        self.mapper = mapper
        self.client = client
        self.path = path
        self._org = config.organization_id[:15] if config is not None else None
        self._secret = config.secret.get_secret_value().encode() if config is not None else None
        self.skipped: deque[str] = deque(maxlen=SKIPPED_KEPT)
        """Notifications that could not be mapped (where and why); polling catches them."""

    def verify(self, request: WebhookRequest) -> None:
        if self._secret is None or self._org is None:
            raise Unauthorized("outbound_messages is not configured for this Salesforce connector")
        tokens = parse_qs(urlsplit(request.url).query).get("token") or [""]
        if not hmac.compare_digest(tokens[0].encode(), self._secret):
            raise Unauthorized("the endpoint URL's token parameter does not match the secret")
        org, _ = parse_notifications(request.body)
        if org[:15] != self._org:
            raise Unauthorized(f"message from another org ({org or 'no OrganizationId'})")

    def ack_response(self, request: WebhookRequest) -> tuple[str, bytes]:
        """(content type, body) of the SOAP acknowledgement to answer once the request is
        stored; without it Salesforce sends the message again."""
        return ACK_CONTENT_TYPE, ACK

    def _incomplete(self, note: Notification) -> list[str]:
        """Fields Salesforce always fills that the notification lacks: the admin did not select
        every mapped field, so the message cannot be trusted to carry the record's state."""
        wanted = set(self.mapper.soql_fields(note.sobject))
        always = (ALWAYS_SET.get(note.sobject, frozenset()) & wanted) | {"Id", MODSTAMP}
        return sorted(f for f in always if note.record.get(f) in (None, ""))

    async def _fetch(self, sobject: str, ids: list[str]) -> list[Event]:
        """Read records by id (incomplete notifications); ids no longer there become deletes."""
        if self.client is None:  # built without a client: nothing to read with
            self.skipped.extend(f"{sobject} {i}: incomplete notification, no client" for i in ids)
            return []
        fields = ", ".join(self.mapper.soql_fields(sobject))
        safe = [i for i in ids if is_record_id(i)]
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(safe), 100):
            chunk = safe[start : start + 100]
            where = " OR ".join(f"Id = '{i}'" for i in chunk)
            rows = await self.client.query_records(
                f"read {sobject} by id", f"SELECT {fields} FROM {sobject} WHERE {where}"
            )
            found.update({str(r["Id"]): r for r in rows})
            gone = [i for i in chunk if i not in found]
            if gone:
                where = " OR ".join(f"Id = '{i}'" for i in gone)
                rows = await self.client.query_records(
                    f"read deleted {sobject}",
                    f"SELECT Id, {MODSTAMP}, IsDeleted FROM {sobject} WHERE {where}",
                    include_deleted=True,
                )
                for row in rows:
                    found[str(row["Id"])] = {**row, "_deleted": True}
        events = []
        for record in found.values():
            try:
                if record.get("_deleted"):
                    events.append(self.mapper.delete(sobject, record))
                else:
                    events.append(self.mapper.event(sobject, record))
            except DataError as exc:
                self.skipped.append(str(exc))
                reject(BadRecord(sobject, str(record.get("Id") or ""), exc.reason, exc.where))
        return events

    async def parse(self, request: WebhookRequest) -> list[Event]:
        _, notes = parse_notifications(request.body)
        if self.mapper.own_user is None and self.client is not None:  # once: whose are ours
            self.mapper.learn_own_user(await self.client.own_user_id())
        latest: dict[tuple[str, str], Event] = {}
        fetch: dict[str, set[str]] = {}
        events: list[Event] = []
        for note in notes:
            if note.sobject not in self.mapper.specs:
                reason = f"Notification {note.id}: sObject {note.sobject} is not read by crm-pulse"
                self.skipped.append(reason)
                log.warning("Outbound Message notification ignored", extra={"reason": reason})
                continue
            lacking = self._incomplete(note)
            if lacking and note.record.get("Id"):
                log.info(
                    "Outbound Message lacks fields; reading the record",
                    extra={"sobject": note.sobject, "fields": lacking},
                )
                fetch.setdefault(note.sobject, set()).add(str(note.record["Id"]))
                continue
            try:
                events.append(self.mapper.event(note.sobject, note.record))
            except DataError as exc:
                self.skipped.append(f"Notification {note.id}: {exc}")
                rid = str(note.record.get("Id") or "")
                reject(
                    BadRecord(note.sobject, rid, exc.reason, exc.where or f"Notification {note.id}")
                )
                log.warning("Outbound Message notification not mapped", extra={"reason": str(exc)})
        for sobject, ids in fetch.items():
            events.extend(await self._fetch(sobject, sorted(ids)))
        for event in events:
            key = (event.object, event.id)
            if key not in latest or event.replaces(latest[key]):
                latest[key] = event  # a message may carry one record twice: keep the winner
        return list(latest.values())
