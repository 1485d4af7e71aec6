"""A fake Pipedrive company account (API v2 + v1 field definitions) for tests and the sandbox.

Records live in memory; update times have Pipedrive's one-second resolution (a record changed
twice in one second gets the next second, so its versions still grow). Custom fields have
40-character hash keys per account. Every call is charged in tokens (list 10, get 1, PATCH and
POST 5) against a two-second burst window; over it, or when forced, the answer is 429 with
``Retry-After`` and the ``x-ratelimit-*`` headers. :meth:`FakePipedrive.webhook` builds webhooks
v2 deliveries with HTTP Basic credentials and :meth:`FakePipedrive.deliver` POSTs them to a URL
with Pipedrive's retry schedule.
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

__all__ = ["FakePipedrive"]

_COST = {"GET_list": 10, "GET_one": 1, "PATCH": 5, "POST": 5}
_ENTITIES = ("deals", "persons", "organizations", "activities")
_SINGULAR = {
    "deals": "deal",
    "persons": "person",
    "organizations": "organization",
    "activities": "activity",
}


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


class FakePipedrive:
    def __init__(
        self,
        token: str = "pd-test-token",
        *,
        clock: Callable[[], float] = time.time,
        burst: int = 10_000,
        webhook_user: str = "crm-pulse",
        webhook_password: str = "pd-hook-pass",
    ) -> None:
        self.token = token
        self.clock = clock
        self.burst = burst
        self.webhook_user = webhook_user
        self.webhook_password = webhook_password
        self.records: dict[str, dict[str, dict[str, Any]]] = {e: {} for e in _ENTITIES}
        self.fields: dict[str, dict[str, dict[str, Any]]] = {e: {} for e in _ENTITIES}
        self.calls: list[tuple[str, str]] = []
        self._spent: list[tuple[float, int]] = []
        self._forced: list[float] = []
        self._lock = threading.RLock()
        self._next = 100
        self.daily_left = 100_000

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
            if entity == "deals":
                record.update(status="open", is_archived=False)
            record.update(data)
            self._stamp(record, at)
            self.records[entity][rid] = record
            return rid

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

    def custom_value(self, entity: str, rid: str, name: str) -> Any:
        with self._lock:
            key = next(
                (k for k, f in self.fields[entity].items() if f["name"] == name or k == name), None
            )
            return None if key is None else self.records[entity][rid]["custom_fields"].get(key)

    def rate_limit(self, requests: int, retry_after: float) -> None:
        with self._lock:
            self._forced = [retry_after] * requests

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
        """Headers and body of a webhooks v2 delivery about one record."""
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
                "data": json.loads(json.dumps(record))
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
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/api/v2/deals/archived", self._archived)
        r.add_get("/api/v2/{entity}", self._list)
        r.add_get("/api/v2/{entity}/{id}", self._get)
        r.add_patch("/api/v2/{entity}/{id}", self._patch)
        r.add_get("/v1/{singular}Fields", self._fields)
        r.add_post("/v1/{singular}Fields", self._create_field)
        return app

    def _cost(self, request: web.Request) -> int:
        if request.method == "GET":
            return _COST["GET_one"] if request.match_info.get("id") else _COST["GET_list"]
        return _COST.get(request.method, 5)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        with self._lock:
            self.calls.append((request.method, request.path))
            now = self.clock()
            self._spent = [(t, c) for t, c in self._spent if t > now - 2]
            cost = self._cost(request)
            used = sum(c for _, c in self._spent)
            forced = self._forced.pop(0) if self._forced else None
            headers = {
                "x-ratelimit-limit": str(self.burst),
                "x-ratelimit-remaining": str(max(0, self.burst - used)),
                "x-ratelimit-reset": "2",
                "x-daily-requests-left": str(self.daily_left),
            }
        if (
            request.headers.get("x-api-token") != self.token
            and request.query.get("api_token") != self.token
        ):
            return web.json_response(
                {"success": False, "error": "unauthorized access", "errorCode": 401}, status=401
            )
        if forced is not None or used + cost > self.burst:
            wait = forced if forced is not None else 2
            return web.json_response(
                {"success": False, "error": "Rate limit exceeded", "errorCode": 429},
                status=429,
                headers={**headers, "Retry-After": f"{wait:g}", "x-ratelimit-remaining": "0"},
            )
        with self._lock:
            self._spent.append((now, cost))
            self.daily_left -= cost
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

    def _page(self, request: web.Request, rows: list[dict[str, Any]]) -> web.Response:
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 500:
            return web.json_response(
                {"success": False, "error": "limit must be between 1 and 500", "errorCode": 400},
                status=400,
            )
        since = request.query.get("updated_since")
        if since:
            rows = [r for r in rows if _seconds(r["update_time"]) >= _seconds(since)]
        sort = request.query.get("sort_by", "id")
        if sort not in ("id", "update_time", "add_time"):
            return web.json_response(
                {"success": False, "error": f"invalid sort_by {sort}", "errorCode": 400}, status=400
            )
        rows.sort(
            key=lambda r: (str(r.get(sort)) if sort != "id" else int(r["id"]), int(r["id"])),
            reverse=request.query.get("sort_direction") == "desc",
        )
        offset = (
            int(base64.b64decode(request.query["cursor"]).decode())
            if request.query.get("cursor")
            else 0
        )
        page = rows[offset : offset + limit]
        more = offset + limit < len(rows)
        return web.json_response(
            {
                "success": True,
                "data": json.loads(json.dumps(page)),
                "additional_data": {
                    "next_cursor": base64.b64encode(str(offset + limit).encode()).decode()
                    if more
                    else None
                },
            }
        )

    async def _list(self, request: web.Request) -> web.Response:
        entity = self._entity(request)
        with self._lock:
            rows = list(self.records[entity].values())
            org = request.query.get("org_id")
            if org is not None:
                rows = [r for r in rows if str(r.get("org_id")) == org]
            if entity == "deals":
                status = request.query.get("status")
                wanted = set(status.split(",")) if status else {"open", "won", "lost"}
                rows = [r for r in rows if r["status"] in wanted and not r.get("is_archived")]
            else:
                rows = [r for r in rows if not r.get("is_deleted")]
            return self._page(request, rows)

    async def _archived(self, request: web.Request) -> web.Response:
        with self._lock:
            rows = [
                r
                for r in self.records["deals"].values()
                if r.get("is_archived") and r["status"] != "deleted"
            ]
            org = request.query.get("org_id")
            if org is not None:
                rows = [r for r in rows if str(r.get("org_id")) == org]
            return self._page(request, rows)

    async def _get(self, request: web.Request) -> web.Response:
        entity = self._entity(request)
        with self._lock:
            record = self.records[entity].get(request.match_info["id"])
            if record is None or record.get("is_deleted"):
                return web.json_response(
                    {"success": False, "error": "not found", "errorCode": 404}, status=404
                )
            return web.json_response({"success": True, "data": json.loads(json.dumps(record))})

    async def _patch(self, request: web.Request) -> web.Response:
        entity = self._entity(request)
        body = await request.json()
        with self._lock:
            record = self.records[entity].get(request.match_info["id"])
            if record is None or record.get("is_deleted"):
                return web.json_response(
                    {"success": False, "error": "not found", "errorCode": 404}, status=404
                )
            custom = body.get("custom_fields") or {}
            unknown = [k for k in custom if k not in self.fields[entity]]
            if unknown:
                return web.json_response(
                    {
                        "success": False,
                        "error": f"Unknown custom field(s): {', '.join(unknown)}",
                        "errorCode": 400,
                    },
                    status=400,
                )
            self.update(
                entity,
                request.match_info["id"],
                {k: v for k, v in body.items() if k != "custom_fields"},
                custom=custom,
            )
            return web.json_response({"success": True, "data": json.loads(json.dumps(record))})

    def _singular_entity(self, request: web.Request) -> str:
        singular = request.match_info["singular"]
        entity = {v: k for k, v in _SINGULAR.items()}.get(singular)
        if entity is None:
            raise web.HTTPNotFound()
        return entity

    async def _fields(self, request: web.Request) -> web.Response:
        entity = self._singular_entity(request)
        with self._lock:
            return web.json_response({"success": True, "data": list(self.fields[entity].values())})

    async def _create_field(self, request: web.Request) -> web.Response:
        entity = self._singular_entity(request)
        body = await request.json()
        if not body.get("name") or body.get("field_type") not in (
            "double",
            "monetary",
            "varchar",
            "enum",
            "date",
            "text",
        ):
            return web.json_response(
                {
                    "success": False,
                    "error": "name and a valid field_type are required",
                    "errorCode": 400,
                },
                status=400,
            )
        key = self.add_field(entity, body["name"], body["field_type"])
        return web.json_response({"success": True, "data": self.fields[entity][key]}, status=201)
