"""The portal's state and the changes a test or the sandbox makes to it."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from .model import _DEFAULT_PIPELINES, _HISTORY, _TYPES, OBJECT_TYPE_IDS, _Property, _Record, iso_ms


class _State:
    """The portal's records, schema, owners and settings, and the changes tests make to them
    (under one lock: tests change the portal while the server serves it)."""

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
        self.searches_counted: deque[float] = deque(maxlen=_HISTORY)
        """When (``clock``) each search was counted in the search limit's window: on arrival."""
        self._write_calls = 0
        self.connections: set[tuple[Any, ...]] = set()
        """Client (address, port) pairs seen: how many connections the clients opened."""
        self._next_id = 1000
        self._last_ms = 0
        self._lock = threading.RLock()
        self._forced_429: list[float] = []
        self.faults: list[tuple[int, float]] = []
        self.stalls: list[float] = []
        """Seconds the next requests are held before HubSpot sees (counts) them: a stalled
        sender or a slow network, reproducibly."""
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

    def associate(self, object_type: str, rid: str, to_type: str, to_id: str) -> None:
        """Associate two records (both directions), as the CRM's UI does."""
        with self._lock:
            self.associations.setdefault((object_type, rid, to_type), set()).add(to_id)
            self.associations.setdefault((to_type, to_id, object_type), set()).add(rid)

    def add_property(
        self, object_type: str, name: str, type_: str = "number", group: str = "dealinformation"
    ) -> None:
        with self._lock:
            self.properties[object_type][name] = _Property(name, name, type_, type_, group)

    def value(self, object_type: str, rid: str, name: str) -> str | None:
        with self._lock:
            return self.records[object_type][rid].properties.get(name)

    def write_calls(self) -> int:
        """``batch/update`` requests received so far (refused ones included)."""
        return self._write_calls

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
