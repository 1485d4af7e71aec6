"""A fake Salesforce org (REST API v59-style) for tests, the sandbox and the demo.

It keeps sObjects in memory and serves what the connector uses, as vendor-contracts.md says:

* ``GET query`` / ``queryAll`` with a strict SOQL subset (``SELECT fields FROM object [WHERE
  ...] [ORDER BY ...] [LIMIT n]``; comparisons joined by AND or OR, parentheses, NOT; datetime,
  date, string, number, boolean and null literals). A query it does not understand gets
  Salesforce's ``MALFORMED_QUERY``, an unknown field ``INVALID_FIELD``, an unknown object
  ``INVALID_TYPE`` (HTTP 400, ``[{"message", "errorCode"}]``). Results come in pages
  (``page_size``, 2,000 like Salesforce) linked by ``nextRecordsUrl`` as an absolute path.
  ``query`` hides deleted rows; ``queryAll`` shows them with ``IsDeleted = true``.
* ``GET sobjects/{type}/describe``; ``PATCH composite/sobjects`` (sObject Collections, at most
  200 records, ``allOrNone``, per-record results in order, ``UNABLE_TO_LOCK_ROW`` on demand,
  ``ENTITY_IS_DELETED``); ``POST tooling/sobjects/CustomField``; ``POST /services/oauth2/token``
  (client-credentials flow).
* Bulk API 2.0 query jobs (``POST jobs/query``, job status, ``results`` as CSV paged with
  ``Sforce-Locator``): a job is ``UploadComplete`` when created, ``InProgress`` at the next
  status check and ``JobComplete`` (or ``Failed``, see :meth:`FakeSalesforce.fail_bulk_jobs`)
  after ``bulk_checks`` checks; its results before that answer 412 ``JOB_NOT_COMPLETE``. ``SELECT COUNT()`` answers ``totalSize``.
* Bearer session check (401 ``INVALID_SESSION_ID``), ``Sforce-Limit-Info: api-usage=N/M`` on every
  answer, and 403 ``REQUEST_LIMIT_EXCEEDED`` once the daily limit is used or on demand.
* Outbound Messages: :meth:`FakeSalesforce.outbound_message` builds the SOAP request for some
  records, :meth:`FakeSalesforce.send_outbound_message` posts it to a URL and says whether the
  endpoint acknowledged it.

Opportunities behave like a standard sales process: ``StageName`` "Closed Won" / "Closed Lost"
set ``IsClosed``/``IsWon``, a stage change sets ``LastStageChangeDate``; a Case with Status
"Closed" is closed (``ClosedDate``). Every change sets ``SystemModstamp`` (strictly increasing, in
milliseconds) and remembers the ``Sforce-Call-Options`` client of the write that caused it.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

import requests
from aiohttp import web

from ...metrics.events import Event
from .. import contracts
from .soql import Query, SoqlError, check_types, evaluate, parse_soql, sort_value, time_ms

__all__ = [
    "KEY_PREFIXES",
    "STANDARD_FIELDS",
    "FakeSalesforce",
    "SoqlError",
    "parse_soql",
    "sf_time",
]

COLLECTION_MAX = 200
DEFAULT_PAGE = 2000

KEY_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "Lead": "00Q",
    "Opportunity": "006",
    "Case": "500",
    "Task": "00T",
    "Event": "00U",
    "User": "005",
    "ForecastingQuota": "0J9",
    "PermissionSet": "0PS",
    "Period": "026",
    "FieldPermissions": "01k",
}

_SYSTEM = {
    "Id": "id",
    "IsDeleted": "boolean",
    "CreatedDate": "datetime",
    "CreatedById": "reference",
    "LastModifiedDate": "datetime",
    "LastModifiedById": "reference",
    "SystemModstamp": "datetime",
}
STANDARD_FIELDS: dict[str, dict[str, str]] = {
    "Account": {
        "Name": "string",
        "OwnerId": "reference",
        "Website": "url",
        "Type": "picklist",
        "Industry": "picklist",
        "AnnualRevenue": "currency",
    },
    "Contact": {
        "FirstName": "string",
        "LastName": "string",
        "AccountId": "reference",
        "OwnerId": "reference",
        "Email": "email",
    },
    "Lead": {
        "FirstName": "string",
        "LastName": "string",
        "Company": "string",
        "Email": "email",
        "OwnerId": "reference",
        "Status": "picklist",
        "IsConverted": "boolean",
        "ConvertedDate": "date",
        "ConvertedAccountId": "reference",
        "ConvertedContactId": "reference",
        "ConvertedOpportunityId": "reference",
    },
    "Opportunity": {
        "Name": "string",
        "AccountId": "reference",
        "OwnerId": "reference",
        "Amount": "currency",
        "StageName": "picklist",
        "IsClosed": "boolean",
        "IsWon": "boolean",
        "CloseDate": "date",
        "Type": "picklist",
        "Probability": "percent",
        "LastStageChangeDate": "datetime",
    },
    "Case": {
        "Subject": "string",
        "AccountId": "reference",
        "OwnerId": "reference",
        "Status": "picklist",
        "IsClosed": "boolean",
        "ClosedDate": "datetime",
    },
    "Task": {
        "Subject": "string",
        "OwnerId": "reference",
        "AccountId": "reference",
        "WhatId": "reference",
        "WhoId": "reference",
        "Status": "picklist",
        "TaskSubtype": "picklist",
        "ActivityDate": "date",
    },
    "Event": {
        "Subject": "string",
        "OwnerId": "reference",
        "AccountId": "reference",
        "ActivityDateTime": "datetime",
        "ActivityDate": "date",
        "IsAllDayEvent": "boolean",
        "StartDateTime": "datetime",
        "EndDateTime": "datetime",
    },
    "User": {"Name": "string", "Username": "string", "Email": "email", "IsActive": "boolean"},
    "PermissionSet": {"Name": "string", "Label": "string"},
    "Period": {"Type": "picklist", "StartDate": "date", "EndDate": "date"},
    "FieldPermissions": {
        "ParentId": "reference",
        "SobjectType": "string",
        "Field": "string",
        "PermissionsRead": "boolean",
        "PermissionsEdit": "boolean",
    },
    "ForecastingQuota": {
        "QuotaOwnerId": "reference",
        "QuotaAmount": "currency",
        "StartDate": "date",
        "PeriodId": "reference",
    },
}
_READ_ONLY = {
    "Id",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
    "IsClosed",
    "IsWon",
    "LastStageChangeDate",
}


def sf_time(ms: int) -> str:
    """Salesforce's datetime format: ``2026-01-02T09:00:00.123+0000``."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{ms % 1000:03d}+0000"
    )


# ---------------------------------------------------------------------- the org


@dataclass
class _Page:
    records: list[dict[str, Any]]
    all_rows: bool


@dataclass
class FakeSalesforce:
    """An in-memory Salesforce org. Python methods seed and change it; :meth:`app` serves it."""

    session_id: str = "00Dfake!session"
    organization_id: str = "00D000000000001AAA"
    api_version: str = "59.0"
    page_size: int = DEFAULT_PAGE
    daily_limit: int = 100_000
    client_id: str | None = None
    client_secret: str | None = None
    api_user_id: str = "005000000000000AAA"
    """The session's user: API writes (and seeding without ``by``) are made as this user
    (``CreatedById``, ``LastModifiedById``)."""
    chatter: bool = True
    """False: Chatter is turned off, and the Connect REST API (``chatter/users/me``) refuses."""
    stage_closed: Mapping[str, bool] = field(
        default_factory=lambda: {"Closed Won": True, "Closed Lost": False}
    )
    schema: dict[str, dict[str, str]] = field(default_factory=dict)
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    api_used: int = 0
    tooling_allowed: bool = True
    write_headers: list[str] = field(default_factory=list)
    """The ``Sforce-Call-Options`` header of every write call, in order."""
    change_client: dict[tuple[str, str], str] = field(default_factory=dict)
    """(sObject, id) -> the client (Sforce-Call-Options) of the write that last changed it."""
    requests_seen: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=100_000))
    """(method, path) of the latest API requests, oldest first."""

    def __post_init__(self) -> None:
        for sobject, fields in STANDARD_FIELDS.items():
            self.schema.setdefault(sobject, {**_SYSTEM, **fields})
            self.records.setdefault(sobject, {})
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._last_ms = 0
        self._refuse = 0
        self._fail = (0, 503)
        self._locks: dict[str, int] = {}
        self._write_calls = 0
        self._cursors: dict[str, _Page] = {}
        self.bulk_jobs: dict[str, list[list[str]]] = {}
        """Bulk API 2.0 query jobs: id -> CSV rows."""
        self.bulk_states: dict[str, dict[str, Any]] = {}
        """Bulk API 2.0 query jobs: id -> {state, checks, error}."""
        self.bulk_checks = 2
        """Status checks a job takes to finish (the first one sees it InProgress)."""
        self._bulk_failures: list[str] = []
        self._stall = (0, 0.0)
        self._bulk_fields: dict[str, list[str]] = {}
        self._cursor_ids = itertools.count(1)
        self._notification_ids = itertools.count(1)

    # ------------------------------------------------------------ time and ids
    def now_ms(self) -> int:
        """The org's clock: wall time in ms, strictly increasing."""
        with self._lock:
            self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
            return self._last_ms

    def new_id(self, sobject: str) -> str:
        prefix = KEY_PREFIXES.get(sobject, "a0" + chr(ord("0") + len(sobject) % 10))
        return f"{prefix}{next(self._ids):012d}AAA"

    # ------------------------------------------------------------ schema
    def add_object(self, sobject: str, fields: Mapping[str, str]) -> None:
        """A custom object (e.g. ``Survey_Response__c``) with its fields and their types."""
        with self._lock:
            self.schema[sobject] = {**_SYSTEM, "Name": "string", **fields}
            self.records.setdefault(sobject, {})

    def add_field(self, sobject: str, name: str, ftype: str = "double") -> None:
        with self._lock:
            self.schema[sobject][name] = ftype

    # ------------------------------------------------------------ records
    def _check_fields(self, sobject: str, values: Mapping[str, Any]) -> None:
        unknown = [k for k in values if k not in self.schema[sobject]]
        if unknown:
            raise KeyError(f"{sobject} has no field {', '.join(unknown)}")

    def create(
        self,
        sobject: str,
        values: Mapping[str, Any],
        *,
        modified_ms: int | None = None,
        by: str | None = None,
    ) -> str:
        """Create a record as the user ``by`` (default: the API user) would; returns its id.
        ``modified_ms`` pins its SystemModstamp (several records sharing one timestamp)."""
        with self._lock:
            self._check_fields(sobject, values)
            rid = self.new_id(sobject)
            now = self.now_ms()
            record: dict[str, Any] = {f: None for f in self.schema[sobject]}
            actor = by or self.api_user_id
            record.update(Id=rid, IsDeleted=False, CreatedDate=sf_time(now), CreatedById=actor)
            if "IsConverted" in record:
                record["IsConverted"] = False
            record.update(values)
            self._derive(sobject, record, {}, now)
            stamp = modified_ms if modified_ms is not None else now
            record.update(
                LastModifiedDate=sf_time(stamp),
                SystemModstamp=sf_time(stamp),
                LastModifiedById=actor,
            )
            self.records[sobject][rid] = record
            return rid

    def _derive(
        self, sobject: str, record: dict[str, Any], before: Mapping[str, Any], now: int
    ) -> None:
        if sobject == "Opportunity":
            stage = record.get("StageName")
            closed = stage in self.stage_closed
            record["IsClosed"] = closed
            record["IsWon"] = bool(closed and self.stage_closed[str(stage)])
            if stage != before.get("StageName"):
                record["LastStageChangeDate"] = sf_time(now) if before else None
        elif sobject == "Case":
            closed = record.get("Status") == "Closed"
            record["IsClosed"] = closed
            if closed and not before.get("IsClosed"):
                record["ClosedDate"] = sf_time(now)
            elif not closed:
                record["ClosedDate"] = None

    def update(
        self,
        sobject: str,
        rid: str,
        values: Mapping[str, Any],
        *,
        client: str | None = None,
        modified_ms: int | None = None,
        by: str | None = None,
    ) -> None:
        """Change fields as the user ``by`` (default: the API user; an API client named
        ``client``) would."""
        with self._lock:
            self._check_fields(sobject, values)
            record = self.records[sobject][rid]
            if record["IsDeleted"]:
                raise KeyError(f"{sobject} {rid} is deleted")
            before = dict(record)
            record.update(values)
            now = self.now_ms()
            self._derive(sobject, record, before, now)
            stamp = modified_ms if modified_ms is not None else now
            record.update(
                LastModifiedDate=sf_time(stamp),
                SystemModstamp=sf_time(stamp),
                LastModifiedById=by or self.api_user_id,
            )
            if client:
                self.change_client[(sobject, rid)] = client
            else:
                self.change_client.pop((sobject, rid), None)

    def delete(self, sobject: str, rid: str) -> None:
        """Move the record to the recycle bin (IsDeleted, new SystemModstamp)."""
        with self._lock:
            record = self.records[sobject][rid]
            record["IsDeleted"] = True
            record["SystemModstamp"] = sf_time(self.now_ms())

    def undelete(self, sobject: str, rid: str) -> None:
        """Restore the record from the recycle bin (new SystemModstamp)."""
        with self._lock:
            record = self.records[sobject][rid]
            record["IsDeleted"] = False
            record["SystemModstamp"] = sf_time(self.now_ms())

    def seed_canonical(self, events: Iterable[Event]) -> dict[tuple[str, str], str]:
        """Fill the org from canonical events (the sandbox and the demo start from those).

        The newest event of each record wins; deletes go to the recycle bin. Accounts, owners
        (as Users), contacts (Leads when ``lifecycle`` is lead), deals, tickets, activities
        (meetings as Events, the rest as Tasks; notes become Tasks) and quotas become records
        that the connector's default mapping reads back as the same canonical fields (dates of
        closing become CloseDate, read back as noon UTC of that day). Returns
        ``(object, canonical id) -> Salesforce id``.
        """
        latest: dict[tuple[str, str], Event] = {}
        for event in events:
            key = (event.object, event.id)
            if key not in latest or event.version > latest[key].version:
                latest[key] = event
        ids: dict[tuple[str, str], str] = {}
        owners: dict[str, str] = {}

        def owner(value: Any) -> str | None:
            if value is None:
                return None
            if str(value) not in owners:
                owners[str(value)] = self.create(
                    "User", {"Name": f"Owner {value}", "Username": f"{value}@example.test"}
                )
            return owners[str(value)]

        def ref(obj: str, value: Any) -> str | None:
            return None if value is None else ids.get((obj, str(value)), str(value))

        def day(value: Any) -> str | None:
            return None if value is None else _date_of(str(value))

        def stamp(value: Any) -> str | None:
            return None if value is None else sf_time(time_ms(str(value)))

        order = ["account", "contact", "deal", "ticket", "activity", "quota"]
        for event in sorted(
            (e for e in latest.values() if e.object in order),
            key=lambda e: (order.index(e.object), e.version),
        ):
            f = event.fields
            own = owner(f.get("owner_id"))
            if event.object == "account":
                sobject, values = (
                    "Account",
                    {
                        "Name": f"Account {event.id}",
                        "OwnerId": own,
                        "Website": f.get("domain"),
                        "CreatedDate": stamp(f.get("created_at")),
                    },
                )
            elif event.object == "contact" and f.get("lifecycle") == "lead":
                converted = f.get("converted_at") is not None
                sobject, values = (
                    "Lead",
                    {
                        "LastName": f"Lead {event.id}",
                        "Company": "Unknown",
                        "OwnerId": own,
                        "Email": f.get("email"),
                        "IsConverted": converted,
                        "ConvertedDate": day(f.get("converted_at")),
                        "ConvertedAccountId": ref("account", f.get("account_id")),
                        "CreatedDate": stamp(f.get("created_at")),
                    },
                )
            elif event.object == "contact":
                sobject, values = (
                    "Contact",
                    {
                        "LastName": f"Contact {event.id}",
                        "AccountId": ref("account", f.get("account_id")),
                        "OwnerId": own,
                        "Email": f.get("email"),
                        "CreatedDate": stamp(f.get("created_at")),
                    },
                )
            elif event.object == "deal":
                status = f.get("status") or "open"
                stage = {"won": "Closed Won", "lost": "Closed Lost"}.get(
                    status, f.get("stage") or "Prospecting"
                )
                sobject, values = (
                    "Opportunity",
                    {
                        "Name": f"Deal {event.id}",
                        "AccountId": ref("account", f.get("account_id")),
                        "OwnerId": own,
                        "StageName": stage,
                        "Amount": None if f.get("amount") is None else float(f["amount"]),
                        "CloseDate": day(f.get("closed_at")),
                        "Type": _DEAL_TYPES.get(str(f.get("type"))),
                        "CreatedDate": stamp(f.get("created_at")),
                    },
                )
            elif event.object == "ticket":
                sobject, values = (
                    "Case",
                    {
                        "Subject": f"Case {event.id}",
                        "AccountId": ref("account", f.get("account_id")),
                        "OwnerId": own,
                        "Status": "Closed" if f.get("status") == "closed" else "New",
                        "CreatedDate": stamp(f.get("created_at")),
                    },
                )
            elif event.object == "activity" and f.get("type") == "meeting":
                sobject, values = (
                    "Event",
                    {
                        "Subject": f"Meeting {event.id}",
                        "OwnerId": own,
                        "AccountId": ref("account", f.get("account_id")),
                        "ActivityDateTime": stamp(f.get("occurred_at")),
                    },
                )
            elif event.object == "activity":
                sobject, values = (
                    "Task",
                    {
                        "Subject": f"{f.get('type') or 'task'} {event.id}",
                        "OwnerId": own,
                        "AccountId": ref("account", f.get("account_id")),
                        "TaskSubtype": {"call": "Call", "email": "Email"}.get(
                            str(f.get("type")), "Task"
                        ),
                        "ActivityDate": day(f.get("occurred_at")),
                    },
                )
            else:
                sobject, values = (
                    "ForecastingQuota",
                    {
                        "QuotaOwnerId": own,
                        "QuotaAmount": None if f.get("amount") is None else float(f["amount"]),
                        "StartDate": None
                        if f.get("period_start") is None
                        else str(f["period_start"]),
                    },
                )
            rid = self.create(sobject, values, modified_ms=event.version)
            with self._lock:
                record = self.records[sobject][rid]
                if sobject == "Opportunity":
                    record["LastStageChangeDate"] = stamp(f.get("stage_entered_at"))
                elif sobject == "Case":
                    record["ClosedDate"] = stamp(f.get("closed_at"))
                if f.get("modified_by") is not None:  # who changed it last, and when
                    record["LastModifiedById"] = owner(f["modified_by"])
                if f.get("modified_at") is not None:
                    record["LastModifiedDate"] = stamp(f["modified_at"])
            ids[(event.object, event.id)] = rid
            if event.op == "delete":
                self.delete(sobject, rid)
        return ids

    def value(self, sobject: str, rid: str, name: str) -> Any:
        with self._lock:
            return self.records[sobject][rid].get(name)

    # ------------------------------------------------------------ behaviours on demand
    def refuse(self, requests: int) -> None:
        """Answer the next ``requests`` API calls with 403 REQUEST_LIMIT_EXCEEDED."""
        with self._lock:
            self._refuse = requests

    def fail(self, requests: int, status: int = 503) -> None:
        """Answer the next ``requests`` API calls with a server error (``SERVER_UNAVAILABLE``)."""
        with self._lock:
            self._fail = (requests, status)

    def stall(self, requests: int, seconds: float) -> None:
        """Answer the next ``requests`` API calls only after ``seconds`` (client timeouts)."""
        with self._lock:
            self._stall = (requests, seconds)

    def fail_bulk_jobs(self, jobs: int, message: str = "InternalServerError") -> None:
        """The next ``jobs`` Bulk API 2.0 query jobs end ``Failed`` with this errorMessage."""
        with self._lock:
            self._bulk_failures = [message] * jobs

    def expire_query_locators(self) -> None:
        """Drop every open query cursor (Salesforce keeps them 2 days): their
        ``nextRecordsUrl`` then answers 400 INVALID_QUERY_LOCATOR."""
        with self._lock:
            self._cursors.clear()

    def lock_rows(self, ids: Iterable[str], times: int = 1) -> None:
        """The next ``times`` writes to each record fail with UNABLE_TO_LOCK_ROW."""
        with self._lock:
            for rid in ids:
                self._locks[rid] = times

    def write_calls(self) -> int:
        with self._lock:
            return self._write_calls

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

    # ------------------------------------------------------------ HTTP
    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[contracts.middleware("salesforce"), self._middleware],
            client_max_size=8 * 1024 * 1024,
        )
        r = app.router
        base = "/services/data/v{version:[0-9]+\\.0}"
        r.add_post("/services/oauth2/token", self._token)
        r.add_get(base + "/query", self._query)
        r.add_get(base + "/query/", self._query)
        r.add_get(base + "/queryAll", self._query)
        r.add_get(base + "/queryAll/", self._query)
        r.add_get(base + "/query/{locator}", self._more)
        r.add_get(base + "/queryAll/{locator}", self._more)
        r.add_post(base + "/jobs/query", self._bulk_create)
        r.add_get(base + "/jobs/query/{job}", self._bulk_job)
        r.add_get(base + "/jobs/query/{job}/results", self._bulk_results)
        r.add_get(base + "/sobjects/{sobject}/describe", self._describe)
        r.add_get(base + "/chatter/users/me", self._me)
        r.add_get(base + "/sobjects/{sobject}/describe/", self._describe)
        r.add_patch(base + "/composite/sobjects", self._collections)
        r.add_post(base + "/sobjects/{sobject}", self._create_record)
        r.add_post(base + "/sobjects/{sobject}/", self._create_record)
        r.add_post(base + "/tooling/sobjects/CustomField", self._custom_field)
        r.add_post(base + "/tooling/sobjects/CustomField/", self._custom_field)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/services/oauth2/token":
            response: web.StreamResponse = await handler(request)
            return response
        with self._lock:
            self.requests_seen.append((request.method, request.path))
            auth = request.headers.get("Authorization", "")
            if auth != f"Bearer {self.session_id}":
                return _error(401, "INVALID_SESSION_ID", "Session expired or invalid", {})
            if self._fail[0] > 0:
                self._fail = (self._fail[0] - 1, self._fail[1])
                return _error(
                    self._fail[1], "SERVER_UNAVAILABLE", "Server is unavailable", self._limits()
                )
            if self._refuse > 0 or self.api_used >= self.daily_limit:
                self._refuse = max(0, self._refuse - 1)
                return _error(
                    403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", self._limits()
                )
            self.api_used += 1
            stall = self._stall
            if stall[0] > 0:
                self._stall = (stall[0] - 1, stall[1])
        if stall[0] > 0:
            await asyncio.sleep(stall[1])
        try:
            response = await handler(request)
        except SoqlError as exc:
            return _error(400, exc.code, exc.message, self._limits())
        response.headers["Sforce-Limit-Info"] = self._limits()["Sforce-Limit-Info"]
        return response

    def _limits(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.api_used}/{self.daily_limit}"}

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        ok = (
            form.get("grant_type") == "client_credentials"
            and self.client_id is not None
            and form.get("client_id") == self.client_id
            and form.get("client_secret") == self.client_secret
        )
        if not ok:
            return web.json_response(
                {"error": "invalid_client", "error_description": "invalid client credentials"},
                status=400,
            )
        host = request.headers.get("Host", "127.0.0.1")
        return web.json_response(
            {
                "access_token": self.session_id,
                "instance_url": f"https://{host}",
                "token_type": "Bearer",
                "issued_at": str(self.now_ms()),
            }
        )

    def _public(
        self, sobject: str, record: Mapping[str, Any], fields: Sequence[str]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": sobject,
                "url": f"/services/data/v{self.api_version}/sobjects/{sobject}/{record['Id']}",
            }
        }
        for name in fields:
            out[name] = record.get(name)
        return out

    def _select(self, soql: str, all_rows: bool) -> tuple[Query, list[dict[str, Any]]]:
        """Run a query: the parsed query and the matching rows, ordered and limited."""
        query = parse_soql(soql)
        with self._lock:
            schema = self.schema.get(query.sobject)
            if schema is None:
                raise SoqlError(
                    "INVALID_TYPE",
                    f"sObject type '{query.sobject}' is not supported. If you are attempting to "
                    "use a custom object, be sure to append the '__c' after the entity name.",
                )
            for name in [*query.fields, *(o[0] for o in query.order)]:
                if name not in schema:
                    raise SoqlError(
                        "INVALID_FIELD",
                        f"No such column '{name}' on entity '{query.sobject}'. If you are "
                        "attempting to use a custom field, be sure to append the '__c' after "
                        "the custom field name.",
                    )
            check_types(query.where, schema, query.sobject)
            rows = [
                dict(r)
                for r in self.records[query.sobject].values()
                if (all_rows or not r["IsDeleted"]) and evaluate(query.where, r, schema)
            ]
        for name, desc, nulls_last in reversed(query.order):
            ftype = schema[name]
            present = [r for r in rows if r.get(name) is not None]
            absent = [r for r in rows if r.get(name) is None]
            present.sort(key=functools.partial(sort_value, name, ftype), reverse=desc)
            rows = present + absent if nulls_last else absent + present
        if query.limit is not None:
            rows = rows[: query.limit]
        return query, rows

    async def _query(self, request: web.Request) -> web.Response:
        soql = request.query.get("q")
        if not soql:
            return _error(400, "MALFORMED_QUERY", "A query string has to be specified", {})
        all_rows = request.path.rstrip("/").endswith("queryAll")
        query, rows = self._select(soql, all_rows)
        if query.count:
            return web.json_response({"totalSize": len(rows), "done": True, "records": []})
        public = [self._public(query.sobject, r, query.fields) for r in rows]
        return web.json_response(self._page(public, all_rows, 0))

    # ------------------------------------------------------------ Bulk API 2.0 queries
    async def _bulk_create(self, request: web.Request) -> web.Response:
        body = await request.json()
        operation = body.get("operation") if isinstance(body, dict) else None
        if operation not in ("query", "queryAll") or not body.get("query"):
            return _error(400, "INVALIDJOB", "operation query or queryAll and a query", {})
        if body.get("columnDelimiter", "COMMA") != "COMMA":
            return _error(400, "FEATURENOTENABLED", "the fake writes COMMA-delimited CSV", {})
        query, rows = self._select(str(body["query"]), operation == "queryAll")
        if query.count or query.order:
            return _error(
                400, "INVALIDJOB", "Bulk queries support neither COUNT() nor ORDER BY here", {}
            )
        job = f"750{next(self._cursor_ids):012d}AAA"
        with self._lock:
            self.bulk_jobs[job] = [
                [_csv_value(self.schema[query.sobject].get(f), r.get(f)) for f in query.fields]
                for r in rows
            ]
            self._bulk_fields[job] = list(query.fields)
            failure = self._bulk_failures.pop(0) if self._bulk_failures else None
            self.bulk_states[job] = {"state": "UploadComplete", "checks": 0, "error": failure}
        return web.json_response(
            {**self._bulk_info(job, query.sobject, operation), "state": "UploadComplete"}
        )

    def _bulk_info(self, job: str, sobject: str, operation: str) -> dict[str, Any]:
        created = sf_time(self.now_ms())
        return {
            "id": job,
            "operation": operation,
            "object": sobject,
            "createdById": "005000000000001AAA",
            "createdDate": created,
            "systemModstamp": created,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }

    async def _bulk_job(self, request: web.Request) -> web.Response:
        """Job info: UploadComplete -> InProgress -> JobComplete (or Failed), one step per
        status check."""
        job = request.match_info["job"]
        with self._lock:
            rows = self.bulk_jobs.get(job)
            state = self.bulk_states.get(job)
            if rows is None or state is None:
                return _error(404, "NOT_FOUND", "The requested resource does not exist", {})
            state["checks"] += 1
            if state["state"] in ("UploadComplete", "InProgress"):
                done = state["checks"] >= self.bulk_checks
                final = "Failed" if state["error"] else "JobComplete"
                state["state"] = final if done else "InProgress"
            info: dict[str, Any] = {
                "id": job,
                "operation": "query",
                "object": "",
                "state": state["state"],
                "concurrencyMode": "Parallel",
                "contentType": "CSV",
                "apiVersion": float(self.api_version),
                "lineEnding": "LF",
                "columnDelimiter": "COMMA",
                "numberRecordsProcessed": len(rows) if state["state"] == "JobComplete" else 0,
                "retries": 0,
                "totalProcessingTime": 0,
            }
            if state["state"] == "Failed":
                info["errorMessage"] = state["error"]
        return web.json_response(info)

    async def _bulk_results(self, request: web.Request) -> web.Response:
        job = request.match_info["job"]
        with self._lock:
            rows = self.bulk_jobs.get(job)
            fields = self._bulk_fields.get(job, [])
            state = (self.bulk_states.get(job) or {}).get("state")
        if rows is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist", {})
        if state != "JobComplete":
            return _error(412, "JOB_NOT_COMPLETE", f"Job {job} is not complete: {state}", {})
        try:
            size = int(request.query.get("maxRecords", "50000"))
            start = int(request.query.get("locator") or 0)
        except ValueError:
            return _error(400, "INVALID_LOCATOR", "invalid locator", {})
        chunk = rows[start : start + size]
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(fields)
        writer.writerows(chunk)
        end = start + len(chunk)
        return web.Response(
            text=out.getvalue(),
            content_type="text/csv",
            charset="utf-8",
            headers={
                "Sforce-Locator": str(end) if end < len(rows) else "null",
                "Sforce-NumberOfRecords": str(len(chunk)),
            },
        )

    def _page(self, records: list[dict[str, Any]], all_rows: bool, start: int) -> dict[str, Any]:
        chunk = records[start : start + self.page_size]
        done = start + len(chunk) >= len(records)
        body: dict[str, Any] = {"totalSize": len(records), "done": done, "records": chunk}
        if not done:
            with self._lock:
                locator = f"01g{next(self._cursor_ids):012d}AAA"
                self._cursors[locator] = _Page(records, all_rows)
            kind = "queryAll" if all_rows else "query"
            body["nextRecordsUrl"] = (
                f"/services/data/v{self.api_version}/{kind}/{locator}-{start + len(chunk)}"
            )
        return body

    async def _more(self, request: web.Request) -> web.Response:
        locator, _, offset = request.match_info["locator"].rpartition("-")
        with self._lock:
            page = self._cursors.pop(locator, None)
        if page is None or not offset.isdigit():
            return _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator", self._limits())
        return web.json_response(self._page(page.records, page.all_rows, int(offset)))

    async def _me(self, request: web.Request) -> web.Response:
        """``GET chatter/users/me``: the session's user (part of Chatter's user detail)."""
        if not self.chatter:
            return _error(403, "FUNCTIONALITY_NOT_ENABLED", "Chatter is not enabled", {})
        return web.json_response(
            {"id": self.api_user_id, "type": "User", "username": "api@example.test"}
        )

    async def _describe(self, request: web.Request) -> web.Response:
        sobject = request.match_info["sobject"]
        with self._lock:
            schema = self.schema.get(sobject)
            if schema is None:
                return _error(404, "NOT_FOUND", "The requested resource does not exist", {})
            fields = [
                {
                    "name": name,
                    "type": ftype,
                    "custom": name.endswith("__c"),
                    "updateable": name not in _READ_ONLY,
                    "nillable": name not in ("Id", "IsDeleted"),
                }
                for name, ftype in schema.items()
            ]
        return web.json_response(
            {"name": sobject, "custom": sobject.endswith("__c"), "fields": fields}
        )

    async def _collections(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "JSON_PARSER_ERROR", "request body is not JSON", {})
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records:
            return _error(400, "INVALID_FIELD", "records: a list of records is required", {})
        if len(records) > COLLECTION_MAX:
            return _error(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
                {},
            )
        all_or_none = bool(body.get("allOrNone", False))
        client = _client(request.headers.get("Sforce-Call-Options", ""))
        with self._lock:
            self._write_calls += 1
            self.write_headers.append(request.headers.get("Sforce-Call-Options", ""))
            seen: set[str] = set()
            results: list[dict[str, Any]] = []
            staged: list[tuple[str, str, dict[str, Any]]] = []
            for item in records:
                result, change = self._check_update(item, seen)
                results.append(result)
                if change is not None:
                    staged.append(change)
            failed = any(not r["success"] for r in results)
            if all_or_none and failed:
                for r in results:
                    if r["success"]:
                        r.update(
                            success=False,
                            errors=[
                                {
                                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                    "message": "Record rolled back because not all records "
                                    "were valid and the request was using AllOrNone header",
                                    "fields": [],
                                }
                            ],
                        )
            else:
                for sobject, rid, values in staged:
                    self.update(sobject, rid, values, client=client)
        return web.json_response(results)

    def _check_update(
        self, item: Any, seen: set[str]
    ) -> tuple[dict[str, Any], tuple[str, str, dict[str, Any]] | None]:
        def fail(
            rid: Any, code: str, message: str, fields: Sequence[str] = ()
        ) -> tuple[dict[str, Any], None]:
            return {
                "id": rid,
                "success": False,
                "errors": [{"statusCode": code, "message": message, "fields": list(fields)}],
            }, None

        if not isinstance(item, dict):
            return fail(None, "INVALID_FIELD", "a record must be an object")
        rid = item.get("id") or item.get("Id")
        sobject = (item.get("attributes") or {}).get("type")
        if not sobject or sobject not in self.schema:
            return fail(rid, "INVALID_TYPE", f"sObject type '{sobject}' is not supported")
        if not isinstance(rid, str) or len(rid) not in (15, 18):
            return fail(rid, "MALFORMED_ID", f"malformed id {rid}")
        if rid in seen:
            return fail(rid, "DUPLICATE_VALUE", "duplicate id in list: " + rid)
        seen.add(rid)
        record = self.records[sobject].get(rid)
        if record is None:
            return fail(rid, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        if record["IsDeleted"]:
            return fail(rid, "ENTITY_IS_DELETED", "entity is deleted")
        values = {k: v for k, v in item.items() if k not in ("attributes", "id", "Id")}
        schema = self.schema[sobject]
        unknown = [k for k in values if k not in schema]
        if unknown:
            return fail(
                rid,
                "INVALID_FIELD",
                f"No such column '{unknown[0]}' on sobject of type {sobject}",
                unknown,
            )
        readonly = [k for k in values if k in _READ_ONLY]
        if readonly:
            return fail(
                rid,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(readonly)}",
                readonly,
            )
        if self._locks.get(rid, 0) > 0:
            self._locks[rid] -= 1
            return fail(
                rid,
                "UNABLE_TO_LOCK_ROW",
                f"unable to obtain exclusive access to this record or 1 records: {rid}",
            )
        return {"id": rid, "success": True, "errors": []}, (sobject, rid, values)

    async def _create_record(self, request: web.Request) -> web.Response:
        """``POST sobjects/{type}``: create one record (used for FieldPermissions)."""
        sobject = request.match_info["sobject"]
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "JSON_PARSER_ERROR", "request body is not JSON", {})
        with self._lock:
            self._write_calls += 1
            self.write_headers.append(request.headers.get("Sforce-Call-Options", ""))
            schema = self.schema.get(sobject)
            if schema is None:
                return _error(404, "NOT_FOUND", "The requested resource does not exist", {})
            if not isinstance(body, dict):
                return _error(400, "INVALID_FIELD", "a record must be an object", {})
            unknown = [k for k in body if k not in schema or k in _READ_ONLY]
            if unknown:
                return _error(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{unknown[0]}' on sobject of type {sobject}",
                    {},
                )
            if sobject == "FieldPermissions":
                obj, _, name = str(body.get("Field") or "").partition(".")
                if self.schema.get(obj, {}).get(name) is None:
                    return _error(
                        400,
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        f"Field: bad value for restricted picklist field: {body.get('Field')}",
                        {},
                    )
                for row in self.records["FieldPermissions"].values():
                    if (row["ParentId"], row["Field"]) == (body.get("ParentId"), body["Field"]):
                        return _error(
                            400,
                            "DUPLICATE_VALUE",
                            f"duplicate value found: <unknown> duplicates value on record with "
                            f"id: {row['Id']}",
                            {},
                        )
            rid = self.create(sobject, body)
        return web.json_response({"id": rid, "success": True, "errors": []}, status=201)

    async def _custom_field(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            self._write_calls += 1
            self.write_headers.append(request.headers.get("Sforce-Call-Options", ""))
            if not self.tooling_allowed:
                return _error(
                    403,
                    "INSUFFICIENT_ACCESS",
                    "insufficient access rights on cross-reference id",
                    self._limits(),
                )
            full = str(body.get("FullName") or "")
            meta = body.get("Metadata") or {}
            sobject, _, name = full.partition(".")
            if sobject not in self.schema or not name.endswith("__c"):
                return _error(400, "INVALID_FIELD", f"FullName {full!r} is not Object.Field__c", {})
            if name in self.schema[sobject]:
                return _error(
                    400,
                    "DUPLICATE_DEVELOPER_NAME",
                    f"There is already a field named {name.removesuffix('__c')} on {sobject}.",
                    {},
                )
            if meta.get("type") not in ("Number", "Currency", "Percent") or not meta.get("label"):
                return _error(
                    400,
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Metadata needs a label and a type (Number, Currency, Percent)",
                    {},
                )
            self.schema[sobject][name] = "double"
            fid = f"00N{next(self._ids):012d}AAA"
        return web.json_response(
            {"id": fid, "success": True, "errors": [], "warnings": []}, status=201
        )


_DEAL_TYPES = {
    "new": "New Customer",
    "upsell": "Existing Customer - Upgrade",
    "renewal": "Renewal",
    "other": "Existing Customer - Replacement",
}


def _date_of(text: str) -> str:
    """The UTC calendar date of an ISO time (or the date itself)."""
    if len(text) == 10:
        return text
    return datetime.fromtimestamp(time_ms(text) // 1000, UTC).date().isoformat()


def _csv_value(ftype: str | None, value: Any) -> str:
    """A value as Bulk API 2.0 CSV writes it: nulls empty, checkboxes true/false, times in Z."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if ftype == "datetime":
        return str(value).replace("+0000", "Z")
    return str(value)


def _client(call_options: str) -> str | None:
    for part in call_options.split(","):
        key, _, value = part.strip().partition("=")
        if key == "client" and value:
            return value
    return None


def _error(status: int, code: str, message: str, headers: Mapping[str, str]) -> web.Response:
    return web.Response(
        text=json.dumps([{"message": message, "errorCode": code}]),
        status=status,
        content_type="application/json",
        headers=dict(headers),
    )
