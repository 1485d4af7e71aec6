"""Outbound Messages: the SOAP request Salesforce sends for some records, and sending it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

import requests

from .state import _Org


class _Outbound(_Org):
    """Outbound Messages, built and sent."""

    # ------------------------------------------------------------ Outbound Messages
    def outbound_message(
        self,
        sobject: str,
        ids: Sequence[str],
        *,
        fields: Sequence[str] | None = None,
        organization_id: str | None = None,
    ) -> bytes:
        """The SOAP request an Outbound Message on ``sobject`` sends for these records (their
        current state; null fields are left out, as Salesforce does)."""
        org = organization_id if organization_id is not None else self.organization_id
        base = "https://fake.my.salesforce.com/services/Soap"
        notes = []
        with self._lock:
            for rid in ids:
                record = self.records[sobject][rid]
                names = ["Id", *(f for f in (fields or self.schema[sobject]) if f != "Id")]
                parts = []
                for name in names:
                    value = record.get(name)
                    if value is None:
                        continue
                    text = str(value).lower() if isinstance(value, bool) else str(value)
                    if name in ("CreatedDate", "SystemModstamp", "LastModifiedDate") or (
                        self.schema[sobject].get(name) == "datetime"
                    ):
                        text = text.replace("+0000", "Z")
                    parts.append(f"<sf:{name}>{escape(text)}</sf:{name}>")
                notes.append(
                    "<Notification>"
                    f"<Id>04l{next(self._notification_ids):012d}AAA</Id>"
                    f'<sObject xsi:type="sf:{sobject}" '
                    'xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
                    + "".join(parts)
                    + "</sObject></Notification>"
                )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            "<soapenv:Body>"
            '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
            f"<OrganizationId>{escape(org)}</OrganizationId>"
            "<ActionId>04k000000000001AAA</ActionId>"
            '<SessionId xsi:nil="true"/>'
            f"<EnterpriseUrl>{base}/c/{self.api_version}/{org[:15]}</EnterpriseUrl>"
            f"<PartnerUrl>{base}/u/{self.api_version}/{org[:15]}</PartnerUrl>"
            + "".join(notes)
            + "</notifications></soapenv:Body></soapenv:Envelope>"
        )
        return body.encode()

    @staticmethod
    def outbound_headers() -> dict[str, str]:
        return {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}

    def send_outbound_message(
        self,
        url: str,
        sobject: str,
        ids: Sequence[str],
        *,
        ca_path: str | None = None,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> bool:
        """POST an Outbound Message to ``url``; True if the endpoint acknowledged it (2xx with
        ``<Ack>true</Ack>``), which is what stops Salesforce from sending it again."""
        body = self.outbound_message(sobject, ids, **kwargs)
        with requests.Session() as session:
            session.trust_env = False
            response = session.post(
                url,
                data=body,
                headers=self.outbound_headers(),
                verify=ca_path if ca_path is not None else True,
                timeout=timeout,
            )
        return 200 <= response.status_code < 300 and b"<Ack>true</Ack>" in response.content
