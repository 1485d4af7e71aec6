"""The org's state and the changes a test, the sandbox or the demo makes to it."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import _SYSTEM, DEFAULT_PAGE, KEY_PREFIXES, STANDARD_FIELDS, _Page, sf_time


@dataclass
class _Org:
    """The org's schema, records, limits and behaviours on demand, and the Python methods that
    change them (under one lock: tests change the org while the server serves it)."""

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

    def _limits(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.api_used}/{self.daily_limit}"}
