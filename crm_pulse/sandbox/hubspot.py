"""A fake HubSpot CRM (v3 objects, search, batch, properties, pipelines, owners) for tests and
the sandbox.

It keeps records in memory and serves the endpoints the connector uses, with the documented
limits (vendor-contracts.md): 200 results per search page, at most 10,000 results per query
(``after`` at or past 10,000: HTTP 400), one sorting rule per search (ties in no promised
order: here newest id first), at most 100 inputs per batch call (and no id twice),
207 with per-record errors, bearer-token auth, rate limits (``rate_max`` requests per
``rate_interval_ms``, ``search_per_second`` for the search API) answered with 429, Retry-After
and the ``X-HubSpot-RateLimit-*`` headers, and search indexing that can lag behind writes
(``index_delay_ms``). Paths take object names (``deals``) or type ids (``0-3``).

:meth:`FakeHubSpot.webhook` builds v3-signed webhook requests the way HubSpot sends them (legacy
``deal.propertyChange`` or generic ``object.propertyChange`` events, merges, deletions), and
:meth:`FakeHubSpot.send_webhooks` POSTs them to a URL in requests of at most 100 events.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from . import contracts

__all__ = ["OBJECT_TYPE_IDS", "FakeHubSpot", "iso_ms", "v3_signature"]

OBJECT_TYPE_IDS = {
    "0-1": "contacts",
    "0-2": "companies",
    "0-3": "deals",
    "0-5": "tickets",
    "0-48": "calls",
    "0-47": "meetings",
    "0-49": "emails",
    "0-27": "tasks",
    "0-46": "notes",
    "0-19": "feedback_submissions",
}
_TYPES = set(OBJECT_TYPE_IDS.values())
SEARCH_PAGE_MAX = 200
SEARCH_RESULTS_MAX = 10_000
BATCH_MAX = 100
WEBHOOK_EVENTS_MAX = 100
ASSOCIATIONS_BATCH_MAX = 1_000
_HISTORY = 100_000
_TYPE_IDS = {name: type_id for type_id, name in OBJECT_TYPE_IDS.items()}


def iso_ms(ms: int) -> str:
    """HubSpot's datetime format: ISO 8601 in UTC with milliseconds."""
    return (
        datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    )


def _ms(value: str) -> int:
    if value.isdigit():
        return int(value)
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def _uri_for_signature(uri: str) -> str:
    for encoded, char in (
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
    ):
        uri = uri.replace(encoded, char).replace(encoded.lower(), char)
    return uri


def v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp_ms: int) -> str:
    """base64(HMAC-SHA256(secret, method + decoded uri + body + timestamp)).

    Written again here on purpose, from HubSpot's documentation, rather than imported from
    the connector: the fake signs as HubSpot does, so a mistake in the connector's check fails
    the tests instead of being shared by both sides."""
    message = (
        method.upper().encode()
        + _uri_for_signature(uri).encode()
        + body
        + str(timestamp_ms).encode()
    )
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


@dataclass
class _Record:
    id: str
    properties: dict[str, str]
    created_ms: int
    modified_ms: int
    archived_ms: int | None = None
    written_at: float = 0.0  # wall-clock time of the last write (search indexing delay)


@dataclass
class _Property:
    name: str
    label: str
    type: str
    field_type: str
    group: str
    extra: dict[str, Any] = field(default_factory=dict)


_DEFAULT_PIPELINES = {
    # what GET /crm/v3/pipelines answers: deal stages carry ``probability`` (1.0 closed won,
    # 0.0 closed lost) and the read-only ``isClosed``; ticket stages carry ``ticketState`` only
    "deals": [
        {
            "id": "default",
            "label": "Sales Pipeline",
            "stages": [
                (
                    "appointmentscheduled",
                    "Appointment Scheduled",
                    {"isClosed": "false", "probability": "0.2"},
                ),
                ("qualifiedtobuy", "Qualified To Buy", {"isClosed": "false", "probability": "0.4"}),
                ("contractsent", "Contract Sent", {"isClosed": "false", "probability": "0.9"}),
                ("closedwon", "Closed Won", {"isClosed": "true", "probability": "1.0"}),
                ("closedlost", "Closed Lost", {"isClosed": "true", "probability": "0.0"}),
            ],
        }
    ],
    "tickets": [
        {
            "id": "0",
            "label": "Support Pipeline",
            "stages": [
                ("1", "New", {"ticketState": "OPEN"}),
                ("2", "Waiting on contact", {"ticketState": "OPEN"}),
                ("4", "Closed", {"ticketState": "CLOSED"}),
            ],
        }
    ],
}
FILTER_GROUPS_MAX = 5
FILTERS_PER_GROUP_MAX = 10
FILTERS_TOTAL_MAX = 25
ASSOCIATIONS_PAGE_MAX = 500
OWNERS_PAGE_MAX = 500
"""Owners per page of ``GET /crm/v3/owners`` (``limit``; HubSpot's default is 100)."""
"""Associations of one record per page of the v4 APIs (more: ``paging.next.after``)."""
_PIPELINES_CREATED = "2024-01-02T03:04:05.678Z"


class FakeHubSpot:
    """In-memory HubSpot portal. Thread-safe: tests change it while the server serves it."""

    def __init__(
        self,
        token: str = "pat-test-token",
        *,
        app_secret: str = "hubspot-app-secret",
        portal_id: int = 4242,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.app_secret = app_secret
        self.portal_id = portal_id
        self.clock = clock
        self.records: dict[str, dict[str, _Record]] = {t: {} for t in _TYPES}
        self.properties: dict[str, dict[str, _Property]] = {t: {} for t in _TYPES}
        self.groups: dict[str, dict[str, str]] = {t: {} for t in _TYPES}
        self.pipelines = json.loads(json.dumps(_DEFAULT_PIPELINES))
        self.associations: dict[tuple[str, str, str], set[str]] = {}
        self.custom_aliases: dict[str, str] = {}
        """Custom objects: type id (``2-...``) and fully qualified name -> our key."""
        self.owners: dict[str, dict[str, Any]] = {}
        """Owners as ``GET /crm/v3/owners`` answers them (read-only in HubSpot's API; the
        portal's users appear here, and a deactivated or removed user's owner is archived)."""
        self.missing_scopes: set[str] = set()
        """Scopes the private app lacks (``crm.objects.owners.read``: owners answer 403)."""
        self.index_delay_ms = 0
        self.currency = "USD"
        """The portal's company currency; deals in another ``deal_currency_code`` keep the
        ``amount_in_home_currency`` they were given."""
        self.errors_without_ids = False
        """Report batch/update's per-record errors without ``context.ids`` (some do)."""
        self.throttled = 0
        """Requests answered 429 because they broke a rate limit (not the forced ones)."""
        # the last requests (bounded: the sandbox may run for hours)
        self.calls: deque[tuple[str, str]] = deque(maxlen=_HISTORY)
        self.search_bodies: deque[dict[str, Any]] = deque(maxlen=_HISTORY)
        self.statuses: deque[int] = deque(maxlen=_HISTORY)
        """Status of every answer the handlers gave (not the 401s and 429s of the gate)."""
        self._write_calls = 0
        self.connections: set[tuple[Any, ...]] = set()
        """Client (address, port) pairs seen: how many connections the clients opened."""
        self._next_id = 1000
        self._last_ms = 0
        self._lock = threading.RLock()
        self._forced_429: list[float] = []
        self.faults: list[tuple[int, float]] = []
        """Injected failures for the next calls: (status or 0, delay seconds)."""
        self.rate_max = 190
        """Requests allowed per ``rate_interval_ms`` (a private app's burst limit); 0: no limit."""
        self.rate_interval_ms = 10_000
        self.search_per_second: float | None = 5.0
        """The search API's own limit (about 5 requests per second); None: no limit."""
        self.daily_max = 500_000
        self._window: list[float] = []
        self._search_window: list[float] = []
        self._daily = 0

    # ------------------------------------------------------------ changing the portal
    def now_ms(self) -> int:
        with self._lock:
            ms = max(int(self.clock() * 1000), self._last_ms + 1)
            self._last_ms = ms
            return ms

    def create(
        self,
        object_type: str,
        properties: Mapping[str, Any],
        *,
        modified_ms: int | None = None,
        by_user: int | None = None,
    ) -> str:
        """A record created by the portal user ``by_user`` (a user id, as owners' ``userId``;
        None: through the API by a private app, which is no user)."""
        with self._lock:
            self._next_id += 1
            rid = str(self._next_id)
            now = modified_ms if modified_ms is not None else self.now_ms()
            props = {k: "" if v is None else str(v) for k, v in properties.items()}
            props.setdefault("createdate", iso_ms(now))
            user = "" if by_user is None else str(by_user)
            props.setdefault("hs_created_by_user_id", user)
            props.setdefault("hs_updated_by_user_id", user)
            self.records[object_type][rid] = _Record(rid, props, now, now, written_at=self.clock())
            self._stamp(object_type, self.records[object_type][rid], now)
            return rid

    def update(
        self,
        object_type: str,
        rid: str,
        properties: Mapping[str, Any],
        *,
        modified_ms: int | None = None,
        by_user: int | None = None,
    ) -> None:
        """A change by the portal user ``by_user`` (None: a private app through the API, which
        leaves ``hs_updated_by_user_id`` empty: an integration is no user)."""
        with self._lock:
            record = self.records[object_type][rid]
            now = modified_ms if modified_ms is not None else self.now_ms()
            record.properties["hs_updated_by_user_id"] = "" if by_user is None else str(by_user)
            for k, v in properties.items():
                if k == "dealstage" and record.properties.get("dealstage") != v:
                    record.properties[f"hs_date_entered_{v}"] = iso_ms(now)
                record.properties[k] = "" if v is None else str(v)
            record.modified_ms = now
            record.written_at = self.clock()
            self._stamp(object_type, record, now)

    def add_owner(
        self,
        email: str,
        first_name: str = "",
        last_name: str = "",
        *,
        owner_id: str | None = None,
        created_ms: int | None = None,
        queue: bool = False,
    ) -> str:
        """A new user of the portal, and so a new owner (``type: PERSON``; ``queue``: an
        owner that is a queue, nobody's seat)."""
        with self._lock:
            oid = owner_id or str(41_000_000 + len(self.owners))  # record ids stay as they were
            at = iso_ms(created_ms if created_ms is not None else self.now_ms())
            user = 9_000_000 + len(self.owners)
            self.owners[oid] = {
                "id": oid,
                "email": email,
                "type": "QUEUE" if queue else "PERSON",
                "firstName": first_name,
                "lastName": last_name,
                "userId": user,
                "userIdIncludingInactive": user,
                "createdAt": at,
                "updatedAt": at,
                "archived": False,
                "teams": [],
            }
            return oid

    def deactivate_owner(self, oid: str, *, touch: bool = True) -> None:
        """The owner's user is deactivated: the owner is archived; ``userId`` becomes null
        (the id stays in ``userIdIncludingInactive``). ``touch=False`` leaves ``updatedAt`` as
        it was (HubSpot does not document whether archiving changes it)."""
        with self._lock:
            owner = self.owners[oid]
            owner.update(archived=True, userId=None)
            if touch:
                owner["updatedAt"] = iso_ms(self.now_ms())

    def archive(self, object_type: str, rid: str) -> None:
        with self._lock:
            self.records[object_type][rid].archived_ms = self.now_ms()

    def _stamp(self, object_type: str, record: _Record, now: int) -> None:
        key = "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"
        record.properties[key] = iso_ms(now)
        # a calculated property: the amount in the portal's currency (a deal in another
        # currency keeps the value it was given: the fake knows no exchange rates)
        home = record.properties.get("deal_currency_code") in (None, "", self.currency)
        if object_type == "deals" and "amount" in record.properties and home:
            record.properties["amount_in_home_currency"] = record.properties["amount"]
        record.properties["hs_object_id"] = record.id
        stage = record.properties.get("dealstage")
        if object_type == "deals" and stage and f"hs_date_entered_{stage}" not in record.properties:
            record.properties[f"hs_date_entered_{stage}"] = iso_ms(now)

    def add_stage(
        self,
        stage: str,
        label: str,
        *,
        closed: bool,
        won: bool = False,
        pipeline: str = "default",
        pipeline_type: str = "deals",
    ) -> None:
        """Add a stage (an admin editing the pipeline): a deal stage closed-won/lost by its
        probability, a ticket stage OPEN/CLOSED by its ticketState."""
        meta = {"isClosed": str(closed).lower(), "probability": "1.0" if won else "0.5"}
        if closed and not won:
            meta["probability"] = "0.0"
        if pipeline_type == "tickets":
            meta = {"ticketState": "CLOSED" if closed else "OPEN"}
        with self._lock:
            for p in self.pipelines[pipeline_type]:
                if p["id"] == pipeline:
                    p["stages"].append((stage, label, meta))

    def edit_pipeline(self, pipeline: str = "default") -> int:
        """What editing a pipeline does in HubSpot: every deal in it gets a new modified date."""
        with self._lock:
            n = 0
            for record in self.records["deals"].values():
                if (
                    record.properties.get("pipeline", "default") == pipeline
                    and record.archived_ms is None
                ):
                    now = self.now_ms()
                    record.modified_ms = now
                    self._stamp("deals", record, now)
                    n += 1
            return n

    def define_custom_object(self, name: str) -> str:
        """A custom object schema (say ``rep_scorecards``); returns its object type id
        (``2-...``). Paths accept the id, the fully qualified name ``p<portal>_<name>`` and
        the name."""
        with self._lock:
            type_id = f"2-{9_000_000 + len(self.custom_aliases) // 2}"
            for alias in (type_id, f"p{self.portal_id}_{name}"):
                self.custom_aliases[alias] = name
            self.records.setdefault(name, {})
            self.properties.setdefault(name, {})
            self.groups.setdefault(name, {})
            return type_id

    def restore(self, object_type: str, rid: str) -> dict[str, Any]:
        """Restore an archived record (a change: its modified date moves); returns the
        ``<object>.restore`` webhook event."""
        with self._lock:
            self.records[object_type][rid].archived_ms = None
            self.update(object_type, rid, {})
        return self.change_event(object_type, rid, kind="restore")

    def associate(self, object_type: str, rid: str, to_type: str, to_id: str) -> None:
        """Associate two records (both directions), as the CRM's UI does."""
        with self._lock:
            self.associations.setdefault((object_type, rid, to_type), set()).add(to_id)
            self.associations.setdefault((to_type, to_id, object_type), set()).add(rid)

    def merge(self, object_type: str, primary: str, merged: str) -> dict[str, Any]:
        """Merge ``merged`` into ``primary`` as HubSpot does (the primary survives, changed;
        the other disappears); returns the ``<object>.merge`` webhook event."""
        with self._lock:
            self.records[object_type][merged].archived_ms = self.now_ms()
            self.update(object_type, primary, {})
        return self.change_event(
            object_type,
            primary,
            kind="merge",
            primaryObjectId=int(primary),
            mergedObjectIds=[int(merged)],
            newObjectId=int(primary),
            numberOfPropertiesMoved=0,
        )

    def add_property(
        self, object_type: str, name: str, type_: str = "number", group: str = "dealinformation"
    ) -> None:
        with self._lock:
            self.properties[object_type][name] = _Property(name, name, type_, type_, group)

    def rate_limit(self, requests: int, retry_after: float) -> None:
        """Answer the next ``requests`` API calls with 429 (``TEN_SECONDLY_ROLLING``) and this
        Retry-After."""
        with self._lock:
            self._forced_429 = [retry_after] * requests

    def exhaust_daily(self) -> None:
        """Use up the portal's daily limit: every call answers 429 ``policyName: DAILY``
        (no Retry-After) until :meth:`reset_daily` (HubSpot: the portal's midnight)."""
        with self._lock:
            self._daily = self.daily_max

    def reset_daily(self) -> None:
        with self._lock:
            self._daily = 0

    def fail(self, requests: int, status: int = 502, *, delay: float = 0.0) -> None:
        """The next ``requests`` calls answer ``status`` (a 5xx with HubSpot's error body)
        after ``delay`` seconds; ``status=0`` only delays (a slow answer: client timeouts)."""
        with self._lock:
            self.faults = [(status, delay)] * requests

    def value(self, object_type: str, rid: str, name: str) -> str | None:
        with self._lock:
            return self.records[object_type][rid].properties.get(name)

    def write_calls(self) -> int:
        """``batch/update`` requests received so far (refused ones included)."""
        return self._write_calls

    # ------------------------------------------------------------ webhooks
    def webhook(
        self,
        url: str,
        events: Sequence[Mapping[str, Any]],
        *,
        secret: str | None = None,
        timestamp_ms: int | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of a v3-signed webhook POST of ``events`` to ``url``."""
        body = json.dumps(
            [{"portalId": self.portal_id, "attemptNumber": 0, **e} for e in events]
        ).encode()
        ts = int(self.clock() * 1000) if timestamp_ms is None else timestamp_ms
        sig = v3_signature(secret or self.app_secret, "POST", url, body, ts)
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": sig,
            "X-HubSpot-Request-Timestamp": str(ts),
            "X-HubSpot-Signature-Version": "v3",
        }
        return headers, body

    def change_event(
        self,
        object_type: str,
        rid: str,
        kind: str = "propertyChange",
        *,
        generic: bool = False,
        **extra: Any,
    ) -> dict[str, Any]:
        """One webhook event as HubSpot words it: legacy ``deal.propertyChange`` (contacts,
        companies, deals, tickets), or with ``generic`` (any type) ``object.propertyChange``
        with ``objectTypeId``."""
        singular = {
            "companies": "company",
            "contacts": "contact",
            "deals": "deal",
            "tickets": "ticket",
        }
        event: dict[str, Any] = {
            "eventId": int(self.clock() * 1000) % 1_000_000_000,
            "subscriptionId": 1,
            "appId": 1,
            "occurredAt": self.now_ms(),
            "changeSource": "CRM_UI",
            "sourceId": "userId:1",
        }
        if generic or object_type not in singular:
            event["subscriptionType"] = f"object.{kind}"
            event["objectTypeId"] = _TYPE_IDS[object_type]
        else:
            event["subscriptionType"] = f"{singular[object_type]}.{kind}"
        event["objectId"] = int(rid)
        event.update(extra)
        return event

    def send_webhooks(
        self,
        url: str,
        events: Sequence[Mapping[str, Any]],
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> list[int]:
        """POST signed webhooks to ``url`` as HubSpot does (at most 100 events per request);
        returns the HTTP status of each request."""
        statuses = []
        for start in range(0, len(events), WEBHOOK_EVENTS_MAX):
            headers, body = self.webhook(url, events[start : start + WEBHOOK_EVENTS_MAX])
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=timeout, context=ssl_context) as r:
                    statuses.append(int(r.status))
            except urllib.error.HTTPError as exc:
                statuses.append(int(exc.code))
        return statuses

    # ------------------------------------------------------------ HTTP
    def app(self) -> web.Application:
        app = web.Application(middlewares=[contracts.middleware("hubspot"), self._middleware])
        r = app.router
        r.add_post("/crm/v3/objects/{type}/search", self._search)
        r.add_get("/crm/v3/objects/{type}", self._list)
        r.add_post("/crm/v3/objects/{type}/batch/read", self._batch_read)
        r.add_post("/crm/v3/objects/{type}/batch/update", self._batch_update)
        r.add_post("/crm/v4/associations/{type}/{to}/batch/read", self._associations)
        r.add_get("/crm/v4/objects/{type}/{id}/associations/{to}", self._associations_page)
        r.add_get("/crm/v3/owners", self._owners)
        r.add_get("/crm/v3/owners/", self._owners)  # the SDK's path
        r.add_get("/crm/v3/pipelines/{type}", self._pipelines)
        r.add_get("/crm/v3/properties/{type}", self._properties)
        r.add_post("/crm/v3/properties/{type}", self._create_property)
        r.add_get("/crm/v3/properties/{type}/groups", self._groups)
        r.add_post("/crm/v3/properties/{type}/groups", self._create_group)
        return app

    def _limit_headers(self, now: float) -> dict[str, str]:
        interval = self.rate_interval_ms / 1000
        self._window = [t for t in self._window if t > now - interval]
        return {
            "X-HubSpot-RateLimit-Max": str(self.rate_max),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.rate_max - len(self._window))),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.rate_interval_ms),
            "X-HubSpot-RateLimit-Daily": str(self.daily_max),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_max - self._daily)),
        }

    def _over_limit(self, request: web.Request, now: float) -> float | None:
        """Seconds to wait if this request breaks a rate limit (it is then not counted)."""
        if self.rate_max and len(self._window) >= self.rate_max:
            oldest = min(self._window)
            return max(0.001, oldest + self.rate_interval_ms / 1000 - now)
        if self.search_per_second and request.path.endswith("/search"):
            self._search_window = [t for t in self._search_window if t > now - 1.0]
            if len(self._search_window) >= self.search_per_second:
                return max(0.001, min(self._search_window) + 1.0 - now)
            self._search_window.append(now)
        return None

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.")
        with self._lock:
            now = self.clock()
            self.calls.append((request.method, request.path))
            peer = request.transport.get_extra_info("peername") if request.transport else None
            if peer:
                self.connections.add(tuple(peer[:2]))
            if request.path.endswith("/batch/update"):
                self._write_calls += 1
            headers = self._limit_headers(now)
            fault = self.faults.pop(0) if self.faults else None
            forced = self._forced_429.pop(0) if self._forced_429 else None
            daily = self.daily_max and self._daily >= self.daily_max
            wait = None if forced is not None or daily else self._over_limit(request, now)
            if forced is None and wait is None and not daily:
                self._window.append(now)
                self._daily += 1
                headers = self._limit_headers(now)
        if daily:
            # the portal's daily limit is used up until its midnight: no Retry-After
            return _rate_limited("DAILY", headers)
        if wait is not None:
            self.throttled += 1
            policy = "SECONDLY" if request.path.endswith("/search") else "TEN_SECONDLY_ROLLING"
            return _rate_limited(policy, {**headers, "Retry-After": f"{max(1, int(wait + 0.999))}"})
        if forced is not None:
            return _rate_limited(
                "TEN_SECONDLY_ROLLING",
                {**headers, "Retry-After": f"{forced:g}", "X-HubSpot-RateLimit-Remaining": "0"},
            )
        if fault is not None:
            status, delay = fault
            if delay:
                await asyncio.sleep(delay)
            if status:
                return _error(status, "INTERNAL_ERROR", "internal error", headers)
        response: web.StreamResponse = await handler(request)
        response.headers.update(headers)
        self.statuses.append(response.status)
        return response

    def _type(self, request: web.Request) -> str:
        raw = request.match_info["type"]
        object_type = OBJECT_TYPE_IDS.get(raw) or self.custom_aliases.get(raw, raw)
        if object_type not in self.records:
            raise web.HTTPBadRequest(
                text=json.dumps(
                    {
                        "status": "error",
                        "category": "OBJECT_TYPE_NOT_FOUND",
                        "message": f"Unable to infer object type from: {raw}",
                    }
                ),
                content_type="application/json",
            )
        return object_type

    def _public(
        self, object_type: str, record: _Record, names: Iterable[str] | None
    ) -> dict[str, Any]:
        wanted = set(names or ()) | {
            "hs_object_id",
            "createdate",
            "hs_lastmodifieddate",
            "lastmodifieddate",
        }
        props: dict[str, str | None] = {k: v for k, v in record.properties.items() if k in wanted}
        for name in wanted:
            props.setdefault(name, None)  # HubSpot returns requested properties, null when unset
        if object_type != "contacts":
            props.pop("lastmodifieddate", None)
        out: dict[str, Any] = {
            "id": record.id,
            "properties": props,
            "createdAt": iso_ms(record.created_ms),
            "updatedAt": iso_ms(record.modified_ms),
            "archived": record.archived_ms is not None,
        }
        if record.archived_ms is not None:
            out["archivedAt"] = iso_ms(record.archived_ms)
        return out

    async def _search(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        body = await request.json()
        self.search_bodies.append(body)
        limit = int(body.get("limit", 10))
        after = int(body.get("after") or 0)
        if limit > SEARCH_PAGE_MAX:
            return _error(400, "VALIDATION_ERROR", f"limit must be <= {SEARCH_PAGE_MAX}")
        if after >= SEARCH_RESULTS_MAX:
            return _error(
                400,
                "VALIDATION_ERROR",
                f"Paging beyond {SEARCH_RESULTS_MAX} results is not supported",
            )
        groups = body.get("filterGroups") or []
        counts = [len(g.get("filters", [])) for g in groups]
        if (
            len(groups) > FILTER_GROUPS_MAX
            or any(n > FILTERS_PER_GROUP_MAX for n in counts)
            or sum(counts) > FILTERS_TOTAL_MAX
        ):
            return _error(
                400,
                "VALIDATION_ERROR",
                f"at most {FILTER_GROUPS_MAX} filterGroups, {FILTERS_PER_GROUP_MAX} filters "
                f"per group and {FILTERS_TOTAL_MAX} filters in all",
            )
        sorts = body.get("sorts") or []
        if len(sorts) > 1:  # HubSpot: "Only one sorting rule can be applied to any search."
            return _error(
                400, "VALIDATION_ERROR", "Only one sorting rule can be applied to any search."
            )
        with self._lock:
            indexed_before = self.clock() - self.index_delay_ms / 1000
            rows = [
                r
                for r in self.records[object_type].values()
                if r.archived_ms is None
                and (self.index_delay_ms == 0 or r.written_at <= indexed_before)
                and (
                    not groups
                    or any(all(_match(r, f) for f in g.get("filters", [])) for g in groups)
                )
            ]
            if sorts:
                # ties of the sort property come in no promised order: here, newest id first,
                # so that a reader relying on an id order among ties loses records
                rows.sort(key=lambda r: int(r.id), reverse=True)
                rows.sort(
                    key=_sorter(str(sorts[0].get("propertyName", ""))),
                    reverse=sorts[0].get("direction") == "DESCENDING",
                )
            end = min(after + limit, SEARCH_RESULTS_MAX)
            page = rows[after:end]
            results = [self._public(object_type, r, body.get("properties")) for r in page]
        answer: dict[str, Any] = {"total": len(rows), "results": results}
        if end < len(rows):
            answer["paging"] = {"next": {"after": str(end)}}
        return web.json_response(answer)

    async def _list(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        archived = request.query.get("archived", "false").lower() == "true"
        limit = min(int(request.query.get("limit", "10")), 100)
        after = int(request.query.get("after") or 0)
        names = request.query.getall("properties", [])
        names = [n for part in names for n in part.split(",") if n]
        with self._lock:
            rows = sorted(
                (
                    r
                    for r in self.records[object_type].values()
                    if (r.archived_ms is not None) == archived
                ),
                key=lambda r: int(r.id),
            )
            page = [self._public(object_type, r, names) for r in rows[after : after + limit]]
        answer: dict[str, Any] = {"results": page}
        if after + limit < len(rows):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return web.json_response(answer)

    async def _owners(self, request: web.Request) -> web.Response:
        """``GET /crm/v3/owners``: ``archived=true`` lists only the archived owners; ``email``
        filters; ``after``/``limit`` page (by id)."""
        if "crm.objects.owners.read" in self.missing_scopes:
            return _error(
                403,
                "MISSING_SCOPES",
                "This app hasn't been granted all required scopes to make this call.",
            )
        archived = request.query.get("archived", "false").lower() == "true"
        raw_limit = request.query.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= OWNERS_PAGE_MAX:
            return _error(400, "VALIDATION_ERROR", f"limit must be 1..{OWNERS_PAGE_MAX}")
        limit = int(raw_limit)
        after_text = request.query.get("after") or "0"
        if not after_text.isdigit():
            return _error(400, "VALIDATION_ERROR", "after must be a paging token")
        after = int(after_text)
        email = request.query.get("email")
        with self._lock:
            rows = sorted(
                (
                    dict(o)
                    for o in self.owners.values()
                    if o["archived"] == archived and (email is None or o["email"] == email)
                ),
                key=lambda o: (len(o["id"]), o["id"]),
            )
        answer: dict[str, Any] = {"results": rows[after : after + limit]}
        if after + limit < len(rows):
            answer["paging"] = _next_page(after + limit)
        return web.json_response(answer)

    async def _batch_read(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        body = await request.json()
        inputs = body.get("inputs") or []
        if len(inputs) > BATCH_MAX:
            return _too_many(len(inputs), BATCH_MAX)
        results, missing = [], []
        with self._lock:
            for item in inputs:
                record = self.records[object_type].get(str(item.get("id")))
                if record is None or record.archived_ms is not None:
                    missing.append(str(item.get("id")))
                else:
                    results.append(self._public(object_type, record, body.get("properties")))
        return _batch_answer(
            results, missing, "Could not get some objects, they may be deleted or not exist."
        )

    async def _batch_update(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        body = await request.json()
        inputs = body.get("inputs") or []
        if len(inputs) > BATCH_MAX:
            return _too_many(len(inputs), BATCH_MAX)
        ids = [str(item.get("id")) for item in inputs]
        if len(set(ids)) != len(ids):
            return _error(400, "VALIDATION_ERROR", "Duplicate IDs found in batch input")
        with self._lock:
            known = self.properties[object_type]
            for item in inputs:
                for name in item.get("properties", {}):
                    if name not in known and name not in _WRITABLE_BUILTINS:
                        return _error(
                            400, "VALIDATION_ERROR", f'Property "{name}" does not exist', {}
                        )
            results, missing = [], []
            for item in inputs:
                rid = str(item.get("id"))
                record = self.records[object_type].get(rid)
                if record is None or record.archived_ms is not None:
                    missing.append(rid)
                    continue
                self.update(object_type, rid, item.get("properties", {}))
                results.append(self._public(object_type, record, item.get("properties", {}).keys()))
        return _batch_answer(
            results,
            missing,
            f"Object not found: {', '.join(missing)}",
            with_ids=not self.errors_without_ids,
        )

    async def _associations(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        to_raw = request.match_info["to"]
        to_type = OBJECT_TYPE_IDS.get(to_raw, to_raw)
        body = await request.json()
        inputs = body.get("inputs") or []
        if len(inputs) > ASSOCIATIONS_BATCH_MAX:
            return _too_many(len(inputs), ASSOCIATIONS_BATCH_MAX)
        results, none = [], []
        with self._lock:
            for item in inputs:
                rid = str(item.get("id"))
                targets = sorted(self.associations.get((object_type, rid, to_type), set()), key=int)
                if not targets:
                    none.append(rid)
                    continue
                result: dict[str, Any] = {
                    "from": {"id": rid},
                    "to": [_associated(t) for t in targets[:ASSOCIATIONS_PAGE_MAX]],
                }
                if len(targets) > ASSOCIATIONS_PAGE_MAX:
                    result["paging"] = _next_page(ASSOCIATIONS_PAGE_MAX)
                results.append(result)
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results, **_batch_times()}
        if none:
            answer["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    "message": f"No {to_type} is associated with {object_type} {rid}.",
                    "context": {"fromObjectId": [rid]},
                    "links": {},
                    "errors": [],
                }
                for rid in none
            ]
            answer["numErrors"] = len(none)
            return web.json_response(answer, status=207)
        return web.json_response(answer)

    async def _associations_page(self, request: web.Request) -> web.Response:
        """``GET /crm/v4/objects/{type}/{id}/associations/{to}``: one record's associations,
        at most 500 per page, ``paging.next.after`` for the rest."""
        object_type = self._type(request)
        to_raw = request.match_info["to"]
        to_type = OBJECT_TYPE_IDS.get(to_raw, to_raw)
        rid = request.match_info["id"]
        try:
            after = int(request.query.get("after") or 0)
            limit = min(int(request.query.get("limit") or ASSOCIATIONS_PAGE_MAX), 500)
        except ValueError:
            return _error(400, "VALIDATION_ERROR", "after and limit must be integers")
        with self._lock:
            targets = sorted(self.associations.get((object_type, rid, to_type), set()), key=int)
        answer: dict[str, Any] = {
            "results": [_associated(t) for t in targets[after : after + limit]]
        }
        if after + limit < len(targets):
            answer["paging"] = _next_page(after + limit)
        return web.json_response(answer)

    async def _pipelines(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        results = []
        for p in self.pipelines.get(object_type, []):
            stages = [
                {
                    "id": sid,
                    "label": label,
                    "metadata": dict(meta),
                    "archived": False,
                    "displayOrder": i,
                    "createdAt": _PIPELINES_CREATED,
                    "updatedAt": _PIPELINES_CREATED,
                    "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                }
                for i, (sid, label, meta) in enumerate(p["stages"])
            ]
            results.append(
                {
                    "id": p["id"],
                    "label": p["label"],
                    "stages": stages,
                    "archived": False,
                    "displayOrder": 0,
                    "createdAt": _PIPELINES_CREATED,
                    "updatedAt": _PIPELINES_CREATED,
                }
            )
        return web.json_response({"results": results})

    async def _properties(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        with self._lock:
            results = [_property_answer(p) for p in self.properties[object_type].values()]
        return web.json_response({"results": results})

    async def _create_property(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        body = await request.json()
        missing = [
            k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)
        ]
        if missing:
            return _error(400, "VALIDATION_ERROR", f"missing required fields: {', '.join(missing)}")
        with self._lock:
            if (
                body["groupName"] not in self.groups[object_type]
                and body["groupName"] not in _BUILTIN_GROUPS
            ):
                return _error(
                    400, "VALIDATION_ERROR", f"property group {body['groupName']} does not exist"
                )
            if body["name"] in self.properties[object_type]:
                return _error(
                    409, "OBJECT_ALREADY_EXISTS", f"Property named '{body['name']}' already exists."
                )
            extra = {
                k: v
                for k, v in body.items()
                if k not in ("name", "label", "type", "fieldType", "groupName")
            }
            created = _Property(
                body["name"],
                body["label"],
                body["type"],
                body["fieldType"],
                body["groupName"],
                extra,
            )
            self.properties[object_type][body["name"]] = created
        return web.json_response(_property_answer(created), status=201)

    async def _groups(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        with self._lock:
            results = [
                {"name": n, "label": label, "displayOrder": -1, "archived": False}
                for n, label in self.groups[object_type].items()
            ]
        return web.json_response({"results": results})

    async def _create_group(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        body = await request.json()
        if not body.get("name") or not body.get("label"):
            return _error(400, "VALIDATION_ERROR", "name and label are required")
        with self._lock:
            if body["name"] in self.groups[object_type]:
                return _error(409, "OBJECT_ALREADY_EXISTS", "group exists")
            self.groups[object_type][body["name"]] = body["label"]
        return web.json_response({"displayOrder": -1, **body, "archived": False}, status=201)


_WRITABLE_BUILTINS = {
    "amount",
    "dealstage",
    "dealname",
    "closedate",
    "hubspot_owner_id",
    "pipeline",
    "dealtype",
    "name",
    "domain",
}
_BUILTIN_GROUPS = {
    "dealinformation",
    "companyinformation",
    "contactinformation",
    "ticketinformation",
}


def _property_answer(p: _Property) -> dict[str, Any]:
    """A property as HubSpot describes one (``description`` and ``options`` always present,
    ``createdAt`` and ``updatedAt`` in ISO time)."""
    out: dict[str, Any] = {
        "name": p.name,
        "label": p.label,
        "type": p.type,
        "fieldType": p.field_type,
        "groupName": p.group,
        "description": "",
        "options": [],
        "createdAt": _PIPELINES_CREATED,
        "updatedAt": _PIPELINES_CREATED,
        "hidden": False,
        "formField": False,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": False,
        "modificationMetadata": {
            "archivable": True,
            "readOnlyDefinition": False,
            "readOnlyValue": False,
        },
    }
    out.update(p.extra)
    return out


def _associated(target: str) -> dict[str, Any]:
    return {
        "toObjectId": str(target),
        "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 1, "label": None}],
    }


def _next_page(after: int) -> dict[str, Any]:
    return {"next": {"after": str(after), "link": f"?after={after}"}}


def _batch_times() -> dict[str, str]:
    """``startedAt`` and ``completedAt``: required in every batch answer."""
    now = iso_ms(int(time.time() * 1000))
    return {"startedAt": now, "completedAt": now}


def _rate_limited(policy: str, headers: Mapping[str, str]) -> web.Response:
    """HubSpot's 429: ``errorType: RATE_LIMIT`` and the ``policyName`` of the limit hit."""
    period = {"DAILY": "daily", "SECONDLY": "secondly"}.get(policy, "ten-secondly rolling")
    return web.json_response(
        {
            "status": "error",
            "message": f"You have reached your {period} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "requestId": str(uuid.uuid4()),
        },
        status=429,
        headers=headers,
    )


def _too_many(count: int, limit: int) -> web.Response:
    return _error(400, "VALIDATION_ERROR", f"Batch size {count} exceeds the limit of {limit}")


def _batch_answer(
    results: list[Any], missing: list[str], message: str, *, with_ids: bool = True
) -> web.Response:
    """200 with the results, or 207 with one OBJECT_NOT_FOUND error naming the missing ids."""
    answer: dict[str, Any] = {"status": "COMPLETE", "results": results, **_batch_times()}
    if not missing:
        return web.json_response(answer)
    error: dict[str, Any] = {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": message,
        "context": {"ids": missing} if with_ids else {},
        "links": {},
        "errors": [],
    }
    answer["errors"] = [error]
    answer["numErrors"] = 1
    return web.json_response(answer, status=207)


def _error(
    status: int, category: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {
            "status": "error",
            "message": message,
            "category": category,
            "correlationId": "00000000-fake",
        },
        status=status,
        headers=headers,
    )


def _value(record: _Record, name: str) -> Any:
    if name in ("hs_object_id", "id"):
        return int(record.id)
    raw = record.properties.get(name)
    if raw is None or raw == "":
        return None
    if name in ("hs_lastmodifieddate", "lastmodifieddate", "createdate") or name.startswith(
        "hs_date_"
    ):
        return _ms(raw)
    try:
        return float(raw)
    except ValueError:
        return raw


def _sorter(name: str) -> Callable[[_Record], tuple[int, Any]]:
    return lambda record: _sort_key(record, name)


def _sort_key(record: _Record, name: str) -> tuple[int, Any]:
    value = _value(record, name)
    return (0, "") if value is None else (1, value)


def _match(record: _Record, f: Mapping[str, Any]) -> bool:
    value = _value(record, str(f.get("propertyName")))
    op = f.get("operator")
    if op == "HAS_PROPERTY":
        return value is not None
    if op == "NOT_HAS_PROPERTY":
        return value is None
    if value is None:
        return False
    target: Any = f.get("value")
    if isinstance(value, int | float) and not isinstance(target, int | float):
        try:
            target = (
                _ms(str(target))
                if not str(target).replace(".", "", 1).lstrip("-").isdigit()
                else float(target)
            )
        except ValueError:
            return False
    elif isinstance(value, str):
        target = str(target)
    if op == "EQ":
        return bool(value == target)
    if op == "NEQ":
        return bool(value != target)
    if op == "GT":
        return bool(value > target)
    if op == "GTE":
        return bool(value >= target)
    if op == "LT":
        return bool(value < target)
    if op == "LTE":
        return bool(value <= target)
    if op == "IN":
        return str(value) in {str(v) for v in f.get("values", [])}
    raise web.HTTPBadRequest(
        text=json.dumps(
            {
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": f"operator {op} not supported",
            }
        ),
        content_type="application/json",
    )
