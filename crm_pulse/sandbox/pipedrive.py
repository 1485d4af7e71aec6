"""A fake Pipedrive company account (API v2, field definitions v2 and v1) for tests and the sandbox.

Records live in memory; update times have Pipedrive's one-second resolution (a record changed
twice in one second gets the next second, so its versions still grow). Custom fields have
40-character hash keys per account and typed values: a ``monetary`` field holds
``{"value", "currency"}`` and numbers are never given as strings (API v2 refuses them).

Limits as Pipedrive documents them (docs/connect-pipedrive.md, "Facts"): a **burst** limit of
requests per token in a rolling 2-second window, by plan (``x-ratelimit-limit``), and a
**daily token budget** per company (30,000 x plan multiplier x seats) from which each call
spends its token cost (API v2: list 10, get 1, POST/PATCH 5, search 20). Over either, the
answer is 429 (burst: with ``Retry-After``). ``status=deleted`` lists only deals deleted in the
last 30 days, from the deals list and from the archived list alike. Faults on demand:
:meth:`FakePipedrive.rate_limit`, :meth:`~FakePipedrive.exhaust_daily`, :meth:`~FakePipedrive.fail`.

:meth:`FakePipedrive.webhook` builds webhooks v2 deliveries (HTTP Basic credentials; ``data``
carries only the essential fields, as Pipedrive's do) and :meth:`FakePipedrive.deliver` POSTs
them to a URL with Pipedrive's retry schedule.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from . import contracts

__all__ = ["FakePipedrive"]

_COST = {"GET_list": 10, "GET_one": 1, "PATCH": 5, "POST": 5}
PLANS: dict[str, tuple[int, int]] = {
    # plan: (burst requests per 2 s per api_token, daily budget multiplier)
    "lite": (20, 1),
    "growth": (40, 2),
    "premium": (100, 5),
    "ultimate": (120, 7),
}
BASE_TOKENS = 30_000
"""Daily token budget per seat before the plan multiplier."""
DELETED_VISIBLE_DAYS = 30
FIELDS_PAGE_DEFAULT, FIELDS_PAGE_MAX = 100, 500
_ESSENTIAL: dict[str, tuple[str, ...]] = {
    # what a webhooks v2 ``data`` carries: the essential fields, not the whole record
    "deals": (
        "id",
        "title",
        "value",
        "currency",
        "status",
        "stage_id",
        "pipeline_id",
        "owner_id",
        "person_id",
        "org_id",
        "add_time",
        "update_time",
    ),
    "persons": ("id", "name", "owner_id", "org_id", "add_time", "update_time"),
    "organizations": ("id", "name", "owner_id", "add_time", "update_time"),
    "activities": ("id", "subject", "type", "owner_id", "deal_id", "add_time", "update_time"),
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "deals": {
        "title": None,
        "value": 0,
        "owner_id": None,
        "person_id": None,
        "org_id": None,
        "pipeline_id": None,
        "stage_id": None,
        "stage_change_time": None,
        "won_time": None,
        "lost_time": None,
        "close_time": None,
        "expected_close_date": None,
    },
    "persons": {"name": None, "owner_id": None, "org_id": None, "emails": []},
    "organizations": {"name": None, "owner_id": None},
    "activities": {
        "subject": None,
        "type": None,
        "owner_id": None,
        "deal_id": None,
        "org_id": None,
        "due_date": None,
        "due_time": None,
    },
}
_STANDARD_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    # a few of the standard (not custom) fields every account lists first
    "deals": (
        ("title", "varchar"),
        ("value", "monetary"),
        ("status", "status"),
        ("stage_id", "stage"),
        ("owner_id", "user"),
        ("org_id", "org"),
        ("add_time", "date"),
        ("update_time", "date"),
    ),
    "persons": (("name", "varchar"), ("owner_id", "user"), ("org_id", "org")),
    "organizations": (("name", "varchar"), ("owner_id", "user")),
    "activities": (("subject", "varchar"), ("type", "varchar"), ("due_date", "date")),
}
_ENTITIES = ("deals", "persons", "organizations", "activities")
_SINGULAR = {
    "deals": "deal",
    "persons": "person",
    "organizations": "organization",
    "activities": "activity",
}


def _essential(entity: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``data`` of a webhooks v2 delivery: the record's essential fields only."""
    return {k: json.loads(json.dumps(record[k])) for k in _ESSENTIAL[entity] if k in record}


def _public(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as the API shows it (without the simulator's own bookkeeping)."""
    return {k: v for k, v in json.loads(json.dumps(record)).items() if not k.startswith("_")}


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _v1_time(seconds: int) -> str:
    """API v1's time format: ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


class FakePipedrive:
    def __init__(
        self,
        token: str = "pd-test-token",
        *,
        clock: Callable[[], float] = time.time,
        plan: str = "growth",
        seats: int = 5,
        burst: int | None = None,
        webhook_user: str = "crm-pulse",
        webhook_password: str = "pd-hook-pass",
        currency: str = "EUR",
    ) -> None:
        self.token = token
        self.clock = clock
        plan_burst, multiplier = PLANS[plan]
        self.burst = plan_burst if burst is None else burst
        """Requests per token in a rolling 2-second window (``x-ratelimit-limit``)."""
        self.daily_budget = BASE_TOKENS * multiplier * seats
        """Tokens the company may spend per day (its midnight resets them)."""
        self.webhook_user = webhook_user
        self.webhook_password = webhook_password
        self.currency = currency
        """The company's default currency (``GET /v1/users/me``: ``default_currency``)."""
        self.records: dict[str, dict[str, dict[str, Any]]] = {e: {} for e in _ENTITIES}
        self.users: dict[int, dict[str, Any]] = {}
        """The company's users as ``GET /v1/users`` answers them (v1 fields, ``YYYY-MM-DD
        HH:MM:SS`` times; API v2 has no users list)."""
        self.missing_scopes: set[str] = set()
        """OAuth scopes the app lacks (``users:read``: ``GET /v1/users`` answers 403)."""
        self.fields: dict[str, dict[str, dict[str, Any]]] = {e: {} for e in _ENTITIES}
        self.calls: list[tuple[str, str]] = []
        self._requests: list[float] = []
        self._forced: list[float] = []
        self.faults: list[tuple[int, float]] = []
        """Injected failures for the next calls: (status or 0, delay seconds)."""
        self._lock = threading.RLock()
        self._next = 100
        self.tokens_spent = 0
        """Tokens spent today (all calls, whatever their outcome but 429)."""
        for entity, standard in _STANDARD_FIELDS.items():
            for key, field_type in standard:
                self.fields[entity][key] = {
                    "key": key,
                    "name": key.replace("_", " ").capitalize(),
                    "field_type": field_type,
                    "edit_flag": False,
                    "options": None,
                }

    @property
    def daily_left(self) -> int:
        return max(0, self.daily_budget - self.tokens_spent)

    # ------------------------------------------------------------ changing the account
    def _stamp(self, record: dict[str, Any], at: int | None) -> None:
        last = _seconds(record["update_time"]) if record.get("update_time") else 0
        now = at if at is not None else max(int(self.clock()), last + 1)
        record["update_time"] = _iso(now)

    def add_field(
        self, entity: str, name: str, field_type: str = "double", options: list[str] | None = None
    ) -> str:
        with self._lock:
            key = hashlib.sha1(f"{entity}:{name}:{self.token}".encode()).hexdigest()
            self.fields[entity][key] = {
                "key": key,
                "name": name,
                "field_type": field_type,
                "edit_flag": True,
                "custom": True,
                "options": [{"id": i + 1, "label": label} for i, label in enumerate(options or [])]
                or None,
            }
            return key

    def create(self, entity: str, data: Mapping[str, Any], *, at: int | None = None) -> str:
        with self._lock:
            self._next += 1
            rid = str(self._next)
            record: dict[str, Any] = {
                "id": int(rid),
                "add_time": _iso(at or int(self.clock())),
                "custom_fields": {},
                "is_deleted": False,
            }
            record.update(_DEFAULTS[entity])  # API v2 lists every standard field, null or not
            if entity == "deals":
                record.update(status="open", is_archived=False, currency=self.currency)
            record.update(data)
            self._stamp(record, at)
            self.records[entity][rid] = record
            return rid

    def add_user(
        self, email: str, name: str = "", *, user_id: int | None = None, at: int | None = None
    ) -> int:
        """A user of the company (``at``: when it was added, epoch seconds)."""
        with self._lock:
            uid = user_id if user_id is not None else 1000 + len(self.users)
            when = _v1_time(at if at is not None else int(self.clock()))
            self.users[uid] = {
                "id": uid,
                "name": name or email,
                "email": email,
                "lang": 1,
                "locale": "en_US",
                "timezone_name": "Europe/Tallinn",
                "timezone_offset": "+02:00",
                "default_currency": self.currency,
                "icon_url": None,
                "active_flag": True,
                "is_deleted": False,
                "is_admin": 0,
                "role_id": 1,
                "created": when,
                "modified": when,
                "has_created_company": False,
                "access": [{"app": "sales", "admin": False, "permission_set_id": "1"}],
                "activated": True,
                "last_login": when,
                "phone": None,
                "is_you": False,
            }
            return uid

    def deactivate_user(self, uid: int, *, touch: bool = True) -> None:
        """An admin deactivates the user (``active_flag: false``); ``touch=False`` leaves
        ``modified`` as it was."""
        with self._lock:
            user = self.users[uid]
            user["active_flag"] = False
            if touch:
                last = _seconds(user["modified"].replace(" ", "T") + "Z")
                user["modified"] = _v1_time(max(int(self.clock()), last + 1))

    def update(
        self,
        entity: str,
        rid: str,
        data: Mapping[str, Any],
        *,
        custom: Mapping[str, Any] | None = None,
    ) -> None:
        with self._lock:
            record = self.records[entity][rid]
            record.update(data)
            record["custom_fields"].update(custom or {})
            self._stamp(record, None)

    def delete(self, entity: str, rid: str) -> None:
        with self._lock:
            record = self.records[entity][rid]
            record["is_deleted"] = True
            if entity == "deals":
                record["status"] = "deleted"
            self._stamp(record, None)
            record["_deleted_at"] = _seconds(record["update_time"])

    def custom_value(self, entity: str, rid: str, name: str) -> Any:
        with self._lock:
            key = next(
                (k for k, f in self.fields[entity].items() if f["name"] == name or k == name), None
            )
            return None if key is None else self.records[entity][rid]["custom_fields"].get(key)

    def archive(self, rid: str) -> None:
        """Archive a deal (it leaves ``/api/v2/deals`` for ``/api/v2/deals/archived``)."""
        self.update("deals", rid, {"is_archived": True})

    def rate_limit(self, requests: int, retry_after: float) -> None:
        """Answer the next ``requests`` calls with the burst limit's 429 and this Retry-After."""
        with self._lock:
            self._forced = [retry_after] * requests

    def exhaust_daily(self) -> None:
        """Spend the company's whole daily token budget: every call answers 429 until
        :meth:`reset_daily` (Pipedrive: the next day)."""
        with self._lock:
            self.tokens_spent = self.daily_budget

    def reset_daily(self) -> None:
        with self._lock:
            self.tokens_spent = 0

    def fail(self, requests: int, status: int = 502, *, delay: float = 0.0) -> None:
        """The next ``requests`` calls answer ``status`` after ``delay`` seconds
        (``status=0``: only the delay, a slow answer for client timeouts)."""
        with self._lock:
            self.faults = [(status, delay)] * requests

    def write_calls(self) -> int:
        return sum(1 for m, p in self.calls if m == "PATCH")

    def webhook(
        self,
        action: str,
        entity: str,
        rid: str,
        *,
        user: str | None = None,
        password: str | None = None,
        event_id: str | None = None,
        with_data: bool = True,
        previous: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of a webhooks v2 delivery about one record (``data``: its
        essential fields only, as Pipedrive sends them)."""
        with self._lock:
            record = self.records[entity].get(rid)
            body = {
                "meta": {
                    "action": action,
                    "entity": _SINGULAR[entity],
                    "entity_id": rid,
                    "id": event_id or str(uuid.uuid4()),
                    "timestamp": _iso(int(self.clock()))
                    if action == "delete"
                    else (record or {}).get("update_time"),
                    "version": "2.0",
                    "change_source": "app",
                    "attempt": 1,
                    "company_id": 1,
                    "user_id": 1,
                },
                "data": _essential(entity, record)
                if (record is not None and with_data and action != "delete")
                else None,
                "previous": dict(previous) if previous is not None else None,
            }
        auth = base64.b64encode(
            f"{user or self.webhook_user}:{password or self.webhook_password}".encode()
        ).decode()
        return {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}, json.dumps(
            body
        ).encode()

    async def deliver(
        self,
        url: str,
        action: str,
        entity: str,
        rid: str,
        *,
        attempts: int = 4,
        sleep: Callable[[float], Any] | None = None,
        **options: Any,
    ) -> list[int]:
        """POST a webhooks v2 delivery to ``url`` the way Pipedrive does: HTTP Basic
        credentials, a 10 s timeout, and retries of the same delivery (same ``meta.id``, growing
        ``meta.attempt``) after 3, 30 and 150 s while the answer is not 2xx. ``sleep`` replaces
        the waits (tests pass a no-op). Returns the HTTP status of every attempt (0 for a
        timeout or a refused connection)."""
        headers, body = self.webhook(action, entity, rid, **options)
        payload = json.loads(body)
        waits = (3.0, 30.0, 150.0)
        statuses: list[int] = []
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for attempt in range(1, attempts + 1):
                payload["meta"]["attempt"] = attempt
                try:
                    async with session.post(
                        url, data=json.dumps(payload).encode(), headers=headers
                    ) as response:
                        statuses.append(response.status)
                except (aiohttp.ClientError, TimeoutError):
                    statuses.append(0)
                if 200 <= statuses[-1] < 300 or attempt > len(waits):
                    break
                wait = waits[attempt - 1]
                await (sleep(wait) if sleep is not None else asyncio.sleep(wait))
        return statuses

    # ------------------------------------------------------------ HTTP
    def app(self) -> web.Application:
        app = web.Application(middlewares=[contracts.middleware("pipedrive"), self._middleware])
        r = app.router
        r.add_get("/api/v2/deals/archived", self._archived)
        r.add_get("/api/v2/{singular}Fields", self._fields_v2)
        r.add_post("/api/v2/{singular}Fields", self._create_field_v2)
        r.add_get("/api/v2/{entity}", self._list)
        r.add_get("/api/v2/{entity}/{id}", self._get)
        r.add_patch("/api/v2/{entity}/{id}", self._patch)
        r.add_get("/v1/users/me", self._me)
        r.add_get("/v1/users", self._users)
        r.add_get("/v1/{singular}Fields", self._fields_v1)
        r.add_post("/v1/{singular}Fields", self._create_field_v1)
        return app

    def _cost(self, request: web.Request) -> int:
        if request.method == "GET":
            return _COST["GET_one"] if request.match_info.get("id") else _COST["GET_list"]
        return _COST.get(request.method, 5)

    def _limit_headers(self, now: float) -> dict[str, str]:
        self._requests = [t for t in self._requests if t > now - 2]
        return {
            "x-ratelimit-limit": str(self.burst),
            "x-ratelimit-remaining": str(max(0, self.burst - len(self._requests))),
            "x-ratelimit-reset": "2",
            "x-daily-requests-left": str(self.daily_left),
        }

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if (
            request.headers.get("x-api-token") != self.token
            and request.query.get("api_token") != self.token
        ):
            return web.json_response(
                {"success": False, "error": "unauthorized access", "errorCode": 401}, status=401
            )
        with self._lock:
            self.calls.append((request.method, request.path))
            now = self.clock()
            headers = self._limit_headers(now)
            cost = self._cost(request)
            forced = self._forced.pop(0) if self._forced else None
            fault = self.faults.pop(0) if self.faults else None
            over_daily = self.tokens_spent + cost > self.daily_budget
            over_burst = len(self._requests) >= self.burst
            if forced is None and not over_daily and not over_burst:
                self._requests.append(now)
                self.tokens_spent += cost
                headers = self._limit_headers(now)
        if over_daily and forced is None:
            return web.json_response(
                {
                    "success": False,
                    "error": "Daily API token budget exceeded",
                    "errorCode": 429,
                },
                status=429,
                headers=headers,
            )
        if forced is not None or over_burst:
            wait = forced if forced is not None else max(0.001, min(self._requests) + 2 - now)
            return web.json_response(
                {"success": False, "error": "Rate limit exceeded", "errorCode": 429},
                status=429,
                headers={
                    **headers,
                    "Retry-After": f"{max(1, int(wait + 0.999)) if forced is None else wait:g}",
                    "x-ratelimit-remaining": "0",
                },
            )
        if fault is not None:
            status, delay = fault
            if delay:
                await asyncio.sleep(delay)
            if status:
                return web.json_response(
                    {"success": False, "error": "Internal server error", "errorCode": status},
                    status=status,
                    headers=headers,
                )
        response: web.StreamResponse = await handler(request)
        response.headers.update(headers)
        return response

    def _entity(self, request: web.Request) -> str:
        entity = request.match_info.get("entity", "deals")
        if entity not in _ENTITIES:
            raise web.HTTPNotFound(
                text=json.dumps({"success": False, "error": "Unknown method ."}),
                content_type="application/json",
            )
        return entity

    @staticmethod
    def _limit(request: web.Request, default: int = 100) -> int | web.Response:
        try:
            limit = int(request.query.get("limit", str(default)))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 500:
            return _bad("limit must be between 1 and 500")
        return limit

    @staticmethod
    def _offset(request: web.Request) -> int | web.Response:
        cursor = request.query.get("cursor")
        if not cursor:
            return 0
        try:
            return int(base64.urlsafe_b64decode(cursor.encode()).decode().removeprefix("o:"))
        except (ValueError, UnicodeDecodeError):
            return _bad("invalid cursor")

    def _page(self, request: web.Request, rows: list[dict[str, Any]]) -> web.Response:
        limit = self._limit(request)
        if isinstance(limit, web.Response):
            return limit
        since = request.query.get("updated_since")
        if since:
            # update_time is always _iso's fixed-width UTC form: compared as text, no parsing
            floor = _iso(_seconds(since))
            rows = [r for r in rows if r["update_time"] >= floor]
        sort = request.query.get("sort_by", "id")
        if sort not in ("id", "update_time", "add_time"):
            return _bad(f"invalid sort_by {sort}")
        rows.sort(
            key=lambda r: (str(r.get(sort)) if sort != "id" else int(r["id"]), int(r["id"])),
            reverse=request.query.get("sort_direction") == "desc",
        )
        offset = self._offset(request)
        if isinstance(offset, web.Response):
            return offset
        page = rows[offset : offset + limit]
        return web.json_response(
            {
                "success": True,
                "data": [_public(r) for r in page],
                "additional_data": {"next_cursor": _cursor(offset + limit, len(rows))},
            }
        )

    def _deal_status(
        self, request: web.Request, rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Deals of the asked statuses (default: all not deleted); deleted ones only when
        deleted in the last 30 days."""
        status = request.query.get("status")
        wanted = set(status.split(",")) if status else {"open", "won", "lost"}
        horizon = self.clock() - DELETED_VISIBLE_DAYS * 86_400
        return [
            r
            for r in rows
            if r["status"] in wanted
            and (
                r["status"] != "deleted"
                or r.get("_deleted_at", _seconds(r["update_time"])) >= horizon
            )
        ]

    async def _list(self, request: web.Request) -> web.Response:
        entity = self._entity(request)
        with self._lock:
            rows = list(self.records[entity].values())
            org = request.query.get("org_id")
            if org is not None:
                rows = [r for r in rows if str(r.get("org_id")) == org]
            if entity == "deals":
                rows = self._deal_status(request, [r for r in rows if not r.get("is_archived")])
            else:
                rows = [r for r in rows if not r.get("is_deleted")]
            return self._page(request, rows)

    async def _archived(self, request: web.Request) -> web.Response:
        with self._lock:
            rows = [r for r in self.records["deals"].values() if r.get("is_archived")]
            org = request.query.get("org_id")
            if org is not None:
                rows = [r for r in rows if str(r.get("org_id")) == org]
            return self._page(request, self._deal_status(request, rows))

    async def _get(self, request: web.Request) -> web.Response:
        entity = self._entity(request)
        with self._lock:
            record = self.records[entity].get(request.match_info["id"])
            if record is None or record.get("is_deleted"):
                return _not_found()
            return web.json_response({"success": True, "data": _public(record)})

    async def _patch(self, request: web.Request) -> web.Response:
        entity = self._entity(request)
        body = await request.json()
        with self._lock:
            record = self.records[entity].get(request.match_info["id"])
            if record is None or record.get("is_deleted"):
                return _not_found()
            custom = body.get("custom_fields") or {}
            unknown = [k for k in custom if k not in self.fields[entity]]
            if unknown:
                return _bad(f"Unknown custom field(s): {', '.join(unknown)}")
            for key, value in custom.items():
                problem = _value_problem(self.fields[entity][key], value)
                if problem:
                    return _bad(f"custom_fields.{key}: {problem}")
            self.update(
                entity,
                request.match_info["id"],
                {k: v for k, v in body.items() if k != "custom_fields"},
                custom=custom,
            )
            return web.json_response({"success": True, "data": _public(record)})

    async def _me(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "success": True,
                "data": {
                    "id": 1,
                    "name": "crm-pulse",
                    "company_id": 1,
                    "default_currency": self.currency,
                },
            }
        )

    async def _users(self, request: web.Request) -> web.Response:
        """``GET /v1/users``: every user of the company, in one answer (no paging)."""
        if "users:read" in self.missing_scopes:
            return web.json_response(
                {"success": False, "error": "Scope and URL mismatch", "errorCode": 403},
                status=403,
            )
        with self._lock:
            data = [dict(u) for _, u in sorted(self.users.items())]
        return web.json_response({"success": True, "data": data})

    def _singular_entity(self, request: web.Request) -> str:
        singular = request.match_info["singular"]
        entity = {v: k for k, v in _SINGULAR.items()}.get(singular)
        if entity is None:
            raise web.HTTPNotFound()
        return entity

    async def _fields_v2(self, request: web.Request) -> web.Response:
        """``GET /api/v2/<entity>Fields``: cursor pages (``limit`` 100 by default, 500 at most)."""
        entity = self._singular_entity(request)
        limit = self._limit(request, FIELDS_PAGE_DEFAULT)
        offset = self._offset(request)
        if isinstance(limit, web.Response):
            return limit
        if isinstance(offset, web.Response):
            return offset
        with self._lock:
            rows = list(self.fields[entity].values())
        page = [_field_v2(f) for f in rows[offset : offset + limit]]
        return web.json_response(
            {
                "success": True,
                "data": page,
                "additional_data": {"next_cursor": _cursor(offset + limit, len(rows))},
            }
        )

    async def _fields_v1(self, request: web.Request) -> web.Response:
        """``GET /v1/<entity>Fields``: ``start``/``limit`` pages (100 by default)."""
        entity = self._singular_entity(request)
        try:
            start = int(request.query.get("start", "0"))
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            return _bad("start and limit must be integers")
        with self._lock:
            rows = list(self.fields[entity].values())
        more = start + limit < len(rows)
        return web.json_response(
            {
                "success": True,
                "data": [_field_v1(f) for f in rows[start : start + limit]],
                "additional_data": {
                    "pagination": {
                        "start": start,
                        "limit": limit,
                        "more_items_in_collection": more,
                        **({"next_start": start + limit} if more else {}),
                    }
                },
            }
        )

    async def _create(self, entity: str, name: Any, field_type: Any) -> dict[str, Any] | None:
        if not name or field_type not in _FIELD_TYPES:
            return None
        key = self.add_field(entity, str(name), str(field_type))
        return self.fields[entity][key]

    async def _create_field_v2(self, request: web.Request) -> web.Response:
        entity = self._singular_entity(request)
        body = await request.json()
        created = await self._create(entity, body.get("field_name"), body.get("field_type"))
        if created is None:
            return _bad("field_name and a valid field_type are required")
        return web.json_response({"success": True, "data": _field_v2(created)})

    async def _create_field_v1(self, request: web.Request) -> web.Response:
        entity = self._singular_entity(request)
        body = await request.json()
        created = await self._create(entity, body.get("name"), body.get("field_type"))
        if created is None:
            return _bad("name and a valid field_type are required")
        return web.json_response({"success": True, "data": _field_v1(created)}, status=201)


_FIELD_TYPES = ("double", "monetary", "varchar", "enum", "date", "text")


def _cursor(offset: int, total: int) -> str | None:
    """The opaque next-page cursor (base64url), or None on the last page."""
    if offset >= total:
        return None
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _bad(message: str) -> web.Response:
    return web.json_response({"success": False, "error": message, "errorCode": 400}, status=400)


def _not_found() -> web.Response:
    return web.json_response({"success": False, "error": "not found", "errorCode": 404}, status=404)


def _options(f: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    return (
        [{"id": o["id"], "label": o["label"]} for o in f["options"]] if f.get("options") else None
    )


def _field_v2(f: Mapping[str, Any]) -> dict[str, Any]:
    """A field definition as API v2 describes it."""
    out: dict[str, Any] = {
        "field_code": f["key"],
        "field_name": f["name"],
        "field_type": f["field_type"],
        "description": "",
        "is_custom_field": bool(f.get("custom")),
        "is_optional_response_field": False,
        "options": _options(f),
        "subfields": [
            {"field_code": "value", "field_name": "Value", "field_type": "double"},
            {"field_code": "currency", "field_name": "Currency", "field_type": "varchar"},
        ]
        if f["field_type"] == "monetary"
        else None,
    }
    return out


def _field_v1(f: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": int(hashlib.sha1(str(f["key"]).encode()).hexdigest()[:6], 16),
        "key": f["key"],
        "name": f["name"],
        "field_type": f["field_type"],
        "edit_flag": bool(f.get("edit_flag")),
        "options": _options(f),
    }


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _value_problem(field: Mapping[str, Any], value: Any) -> str | None:
    """Why API v2 refuses this value for this custom field (None: accepted). Numbers are
    never converted from strings; a monetary field takes ``{"value", "currency"}``."""
    if value is None:
        return None
    kind = field["field_type"]
    if kind == "double" and not _number(value):
        return "a number is expected"
    if kind == "monetary":
        if not isinstance(value, dict) or set(value) - {"value", "currency"}:
            return 'a monetary field takes {"value": <number>, "currency": <code>}'
        if not _number(value.get("value")):
            return "value must be a number"
        currency = value.get("currency")
        if not (isinstance(currency, str) and len(currency) == 3 and currency.isupper()):
            return "currency must be a 3-letter currency code"
    if kind in ("varchar", "text", "date") and not isinstance(value, str):
        return "a string is expected"
    if kind == "enum" and not (isinstance(value, int) and not isinstance(value, bool)):
        return "an option id is expected"
    return None
