"""A simulated TinyCRM, faithful to its (made-up) API, for tests and trying the plugin.

Serve it with :class:`crm_pulse.sandbox.FakeServer` (127.0.0.1, a free port)::

    sim = TinyCrmSimulator("key")
    with FakeServer(sim.app()) as server: ...   # server.url is the base_url

API: bearer ``api_key`` or 401; ``GET /v1/deals?since=&after=&limit=`` (records with
(updated_at, id) after (since, after), oldest first, at most 200, ``has_more``; deleted deals
as ``{"id", "updated_at", "deleted": true}``); ``PATCH /v1/fields`` (at most 50 updates, one
result each; an unknown field is an error of that update); ``GET``/``POST /v1/fields/<object>``;
429 with Retry-After while :meth:`rate_limit` says so.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any

from aiohttp import web

from .webhooks import signature

PAGE_MAX = 200
BATCH_MAX = 50


class TinyCrmSimulator:
    def __init__(self, api_key: str, webhook_secret: str | None = None) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.records: dict[str, dict[str, dict[str, Any]]] = {"deals": {}, "companies": {}}
        self.fields: dict[str, dict[str, dict[str, str]]] = {"deals": {}, "companies": {}}
        self.write_requests = 0
        self._limited = 0
        self._retry_after = 0.0
        self._ids = itertools.count(1)
        self._clock = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------ seeding and changing
    def _now(self) -> int:
        self._clock = max(self._clock + 1, int(time.time() * 1000))
        return self._clock

    def create(self, object: str, data: dict[str, Any], *, at: int | None = None) -> str:
        with self._lock:
            rid = f"{object[0]}{next(self._ids)}"
            now = at if at is not None else self._now()
            self.records[object][rid] = {
                "id": rid,
                "created_at": now,
                "updated_at": now,
                "custom": {},
                **data,
            }
            return rid

    def update(self, object: str, rid: str, data: dict[str, Any]) -> None:
        with self._lock:
            self.records[object][rid].update(data, updated_at=self._now())

    def delete(self, object: str, rid: str) -> None:
        with self._lock:
            self.records[object][rid] = {"id": rid, "updated_at": self._now(), "deleted": True}

    def add_field(self, object: str, name: str) -> None:
        self.fields[object][name] = {"name": name, "label": name, "type": "number"}

    def value(self, object: str, rid: str, field: str) -> Any:
        return self.records[object][rid].get("custom", {}).get(field)

    def rate_limit(self, requests: int, retry_after: float) -> None:
        self._limited, self._retry_after = requests, retry_after

    def webhook(self, rid: str, *, secret: str | None = None) -> tuple[dict[str, str], bytes]:
        """(headers, body) of the webhook TinyCRM sends when deal ``rid`` changes."""
        body = json.dumps({"event": "deal.updated", "record": self.records["deals"][rid]}).encode()
        timestamp = str(int(time.time()))
        key = secret if secret is not None else self.webhook_secret or ""
        return {
            "Content-Type": "application/json",
            "X-Tiny-Timestamp": timestamp,
            "X-Tiny-Signature": signature(key, timestamp, body),
        }, body

    # ------------------------------------------------------------ the API
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        app.router.add_get("/v1/deals", self._list)
        app.router.add_patch("/v1/fields", self._write)
        app.router.add_get("/v1/fields/{object}", self._fields)
        app.router.add_post("/v1/fields/{object}", self._create_field)
        return app

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": "invalid API key"}, status=401)
        with self._lock:
            if self._limited > 0:
                self._limited -= 1
                return web.json_response(
                    {"error": "too many requests"},
                    status=429,
                    headers={"Retry-After": f"{self._retry_after:g}"},
                )
        response: web.StreamResponse = await handler(request)
        return response

    async def _list(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            since, after = int(q.get("since", "0")), q.get("after", "")
            limit = min(PAGE_MAX, int(q.get("limit", "100")))
        except ValueError:
            return web.json_response({"error": "since and limit are integers"}, status=400)
        with self._lock:
            rows = sorted(
                (
                    r
                    for r in self.records["deals"].values()
                    if (r["updated_at"], r["id"]) > (since, after)
                ),
                key=lambda r: (r["updated_at"], r["id"]),
            )
            page = [{k: v for k, v in r.items() if k != "custom"} for r in rows[:limit]]
        return web.json_response({"data": page, "has_more": len(rows) > limit})

    async def _write(self, request: web.Request) -> web.Response:
        updates = (await request.json()).get("updates") or []
        if len(updates) > BATCH_MAX:
            return web.json_response({"error": f"at most {BATCH_MAX} updates"}, status=400)
        results = []
        with self._lock:
            self.write_requests += 1
            for u in updates:
                record = self.records.get(u["object"], {}).get(u["id"])
                if record is None or record.get("deleted"):
                    results.append({"ok": False, "error": "no such record"})
                elif u["field"] not in self.fields.get(u["object"], {}):
                    results.append({"ok": False, "error": f"no field {u['field']!r}"})
                else:
                    record["custom"][u["field"]] = u["value"]
                    record["updated_at"] = self._now()
                    results.append({"ok": True})
        return web.json_response({"results": results})

    async def _fields(self, request: web.Request) -> web.Response:
        return web.json_response({"data": list(self.fields[request.match_info["object"]].values())})

    async def _create_field(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            self.fields[request.match_info["object"]][body["name"]] = body
        return web.json_response({"data": body}, status=201)
