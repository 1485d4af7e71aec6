"""A fake Zoho CRM organization (REST API v8 and the accounts server) for tests and the sandbox.

Faithful to what docs/connect-zoho.md relies on: ``POST /oauth/v2/token`` (refresh-token grant,
form body; refusals are HTTP 200 with an ``error`` key as Zoho's accounts server does) issuing
access tokens that expire after ``expires_in`` seconds, after which the API answers 401
``INVALID_TOKEN``; Get Records (``fields`` required, at most 50; ``sort_by`` id / Created_Time /
Modified_Time; ``per_page`` up to 200; ``page`` only up to 2,000 records, then ``page_token``
up to 100,000; ``If-Modified-Since``; 204 when nothing matches; ``ids``); Get Deleted Records;
Update Records (PUT, at most 100, per-record results, 207 when mixed); the fields API (GET, and
POST creating custom fields up to ``custom_field_limit``; the Deals Stage picklist with forecast
type, category and probability); ``actions/watch`` channels (token of at most 50 characters,
expiry at most a week else one hour) and notification deliveries; API credits per 24 hours
with 429 when spent (:meth:`FakeZoho.exhaust_daily`), forced 429s with ``Retry-After``, and 5xx
or late answers on demand (:meth:`FakeZoho.fail`). API updates are notified to
watching channels like any change (``notify_api_writes``): our own writes come back. Times carry the org's UTC offset
and one-second resolution (a record changed twice in one second gets the next second).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["MODULES", "FakeZoho"]

MODULES = ("Accounts", "Contacts", "Leads", "Deals", "Cases", "Calls", "Events", "Tasks")
STAGES = (
    # actual value, forecast type, forecast category, probability
    ("Qualification", "Open", "Pipeline", 10),
    ("Needs Analysis", "Open", "Pipeline", 20),
    ("Proposal/Price Quote", "Open", "Best Case", 75),
    ("Negotiation/Review", "Open", "Commit", 90),
    ("Closed Won", "Closed Won", "Closed", 100),
    ("Closed Lost", "Closed Lost", "Omitted", 0),
)
_STANDARD: dict[str, list[tuple[str, str, str]]] = {
    # module -> (api_name, label, data_type)
    "Accounts": [("Account_Name", "Account Name", "text")],
    "Contacts": [
        ("Last_Name", "Last Name", "text"),
        ("Email", "Email", "email"),
        ("Account_Name", "Account Name", "lookup"),
    ],
    "Leads": [("Last_Name", "Last Name", "text"), ("Email", "Email", "email")],
    "Deals": [
        ("Deal_Name", "Deal Name", "text"),
        ("Amount", "Amount", "currency"),
        ("Stage", "Stage", "picklist"),
        ("Probability", "Probability (%)", "integer"),
        ("Closing_Date", "Closing Date", "date"),
        ("Type", "Type", "picklist"),
        ("Pipeline", "Pipeline", "picklist"),
        ("Account_Name", "Account Name", "lookup"),
    ],
    "Cases": [
        ("Subject", "Subject", "text"),
        ("Status", "Status", "picklist"),
        ("Account_Name", "Account Name", "lookup"),
    ],
    "Calls": [("Subject", "Subject", "text"), ("Call_Start_Time", "Call Start Time", "datetime")],
    "Events": [("Event_Title", "Title", "text"), ("Start_DateTime", "From", "datetime")],
    "Tasks": [
        ("Subject", "Subject", "text"),
        ("Due_Date", "Due Date", "date"),
        ("Status", "Status", "picklist"),
        ("Closed_Time", "Closed Time", "datetime"),
    ],
}
_COMMON = [
    ("Owner", "Owner", "ownerlookup"),
    ("Created_By", "Created By", "ownerlookup"),
    ("Created_Time", "Created Time", "datetime"),
    ("Modified_By", "Modified By", "ownerlookup"),
    ("Modified_Time", "Modified Time", "datetime"),
    ("What_Id", "Related To", "lookup"),
]
_ID_BASE = 5_725_767_000_000_100_000
REP = {"name": "Rep One", "id": "5725767000000200001", "email": "rep@x.test"}
"""The user seeding changes the org (as a person in the web UI would)."""
API_USER = {"name": "crm-pulse", "id": "5725767000000200002", "email": "crm-pulse@x.test"}
"""The user the OAuth client acts as: API updates are made by it (``users?type=CurrentUser``)."""


def _error(status: int, code: str, message: str, **details: Any) -> web.Response:
    return web.json_response(
        {"code": code, "details": details, "message": message, "status": "error"}, status=status
    )


class FakeZoho:
    def __init__(
        self,
        *,
        client_id: str = "1000.TESTCLIENT",
        client_secret: str = "zoho-test-secret",
        refresh_token: str = "1000.refresh.test",
        clock: Callable[[], float] = time.time,
        offset_minutes: int = 330,
        daily_credits: int = 1_000_000,
        token_lifetime: int = 3600,
        custom_field_limit: int = 50,
        notify_api_writes: bool = True,
        modules: Sequence[str] = MODULES,
        record_limit: int = 100_000,
    ) -> None:
        self.modules = tuple(modules)
        self.record_limit = record_limit
        self.client_id = client_id
        self.notify_api_writes = notify_api_writes
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.clock = clock
        self.tz = timezone(timedelta(minutes=offset_minutes))
        self.daily_credits = daily_credits
        self.token_lifetime = token_lifetime
        self.custom_field_limit = custom_field_limit
        self.stages: list[tuple[str, str, str, int]] = list(STAGES)
        self.records: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in MODULES}
        self.deleted: dict[str, list[dict[str, Any]]] = {m: [] for m in MODULES}
        self.custom: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in MODULES}
        self.channels: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, float] = {}
        self.calls: list[tuple[str, str]] = []
        self.token_requests = 0
        self.page_tokens_used = 0
        self.updates: list[tuple[str, str, dict[str, Any]]] = []
        self.delivered: list[tuple[str, str, tuple[str, ...], int]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.spent: list[tuple[float, int]] = []
        self._forced: list[float | None] = []
        self._faults: list[tuple[int, float]] = []  # (status, delay) for the next calls
        self.concurrency: int | None = None
        """API calls the org may have in flight at once (Zoho's concurrency limit per edition:
        Free 5, Standard 10, Professional 15, ...); a call beyond it gets 429. None: no limit."""
        self.in_flight = 0
        self.concurrency_refusals = 0
        """Calls refused because ``concurrency`` were already in flight."""
        self._page_tokens: dict[str, tuple[str, int, float]] = {}
        self._lock = threading.RLock()
        self._next = _ID_BASE
        self.missing_scopes: set[str] = set()
        """Scopes the grant lacks (``ZohoCRM.users.READ``: the users API answers 401
        ``OAUTH_SCOPE_MISMATCH``)."""

    # ------------------------------------------------------------ changing the org
    def _time(self, seconds: float) -> str:
        return datetime.fromtimestamp(int(seconds), self.tz).isoformat()

    @staticmethod
    def _seconds(text: str) -> int:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())

    def _stamp(self, record: dict[str, Any], at: float | None) -> None:
        last = self._seconds(record["Modified_Time"]) if record.get("Modified_Time") else 0
        now = int(at) if at is not None else max(int(self.clock()), last + 1)
        record["Modified_Time"] = self._time(now)

    def create(
        self,
        module: str,
        data: Mapping[str, Any] | None = None,
        *,
        at: float | None = None,
        by: Mapping[str, str] = REP,
    ) -> str:
        """Create a record as the user ``by`` (``Created_By``, ``Modified_By``)."""
        with self._lock:
            self._next += 1
            rid = str(self._next)
            record: dict[str, Any] = {
                "id": rid,
                "Owner": dict(REP),
                "Created_By": dict(by),
                "Created_Time": self._time(at if at is not None else self.clock()),
            }
            record.update(data or {})
            record["Modified_By"] = dict(by)
            self._stamp(record, at)
            self.records[module][rid] = record
            return rid

    def update(
        self, module: str, rid: str, data: Mapping[str, Any], *, by: Mapping[str, str] = REP
    ) -> None:
        """Change a record as the user ``by`` (``Modified_By``)."""
        with self._lock:
            record = self.records[module][rid]
            record.update(data)
            record["Modified_By"] = dict(by)
            self._stamp(record, None)

    def delete(self, module: str, rid: str, *, permanent: bool = False) -> None:
        with self._lock:
            record = self.records[module].pop(rid)
            now = max(int(self.clock()), self._seconds(record["Modified_Time"]))
            self.deleted[module].append(
                {
                    "deleted_by": {"name": "Rep One", "id": "5725767000000200001"},
                    "id": rid,
                    "display_name": str(record.get("Deal_Name") or record.get("Last_Name") or rid),
                    "type": "permanent" if permanent else "recycle",
                    "created_by": {"name": "Rep One", "id": "5725767000000200001"},
                    "deleted_time": self._time(now),
                }
            )

    def add_field(self, module: str, label: str, data_type: str = "double") -> str:
        with self._lock:
            api = label.strip().replace(" ", "_")
            self.custom[module][api] = {
                "api_name": api,
                "field_label": label,
                "display_label": label,
                "data_type": data_type,
                "custom_field": True,
                "id": str(_ID_BASE + 900_000 + len(self.custom[module])),
            }
            return api

    def value(self, module: str, rid: str, field: str) -> Any:
        with self._lock:
            api = next(
                (a for a, f in self.custom[module].items() if field in (a, f["field_label"])),
                field,
            )
            return self.records[module][rid].get(api)

    def expire_tokens(self) -> None:
        """Every access token issued so far is refused from now on (401 INVALID_TOKEN)."""
        with self._lock:
            self.tokens = {t: 0.0 for t in self.tokens}

    def rate_limit(self, requests: int, retry_after: float | None) -> None:
        """Answer the next ``requests`` API calls with 429 (and this Retry-After)."""
        with self._lock:
            self._forced = [retry_after] * requests

    def fail(self, requests: int, status: int = 500, *, delay: float = 0.0) -> None:
        """The next ``requests`` API calls answer ``status`` (500 INTERNAL_ERROR), after
        ``delay`` seconds (status 0: answer normally, only late)."""
        with self._lock:
            self._faults = [(status, delay)] * requests

    def exhaust_daily(self) -> None:
        """The org's API credits for the last 24 hours are used up (429 until restored)."""
        with self._lock:
            self.daily_credits = 0

    def restore_daily(self, credits: int = 1_000_000) -> None:
        with self._lock:
            self.daily_credits = credits

    def write_calls(self) -> int:
        return sum(1 for m, p in self.calls if m == "PUT" and not p.startswith("/crm/v8/settings"))

    def credits_used(self) -> int:
        with self._lock:
            horizon = self.clock() - 86400
            return sum(c for t, c in self.spent if t > horizon)

    # ------------------------------------------------------------ notifications
    def notification(
        self, module: str, operation: str, ids: Sequence[str], *, token: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of the callback Zoho sends for a watched event."""
        with self._lock:
            channel = next(
                (c for c in self.channels.values() if self._watches(c, module, operation)), None
            )
            body = {
                "server_time": int(self.clock() * 1000),
                "query_params": {},
                "module": module,
                "resource_uri": f"https://www.zohoapis.com/crm/v8/{module}",
                "ids": list(ids),
                "affected_fields": [],
                "operation": operation,
                "channel_id": (channel or {}).get("channel_id", "0"),
                "token": token if token is not None else (channel or {}).get("token"),
            }
        return {"Content-Type": "application/json"}, json.dumps(body).encode()

    def _watches(self, channel: Mapping[str, Any], module: str, operation: str) -> bool:
        if channel["expires_at"] <= self.clock():
            return False
        action = {"insert": "create", "update": "edit", "delete": "delete"}.get(operation)
        return f"{module}.all" in channel["events"] or f"{module}.{action}" in channel["events"]

    async def deliver(self, module: str, operation: str, ids: Sequence[str]) -> int | None:
        """POST the notification to the watching channel's notify_url (None: no open channel
        watches it, as Zoho sends nothing then). Returns the HTTP status."""
        with self._lock:
            channel = next(
                (c for c in self.channels.values() if self._watches(c, module, operation)), None
            )
        if channel is None:
            return None
        headers, body = self.notification(module, operation, ids)
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(channel["notify_url"], data=body, headers=headers) as response,
        ):
            with self._lock:
                self.delivered.append((module, operation, tuple(ids), response.status))
            return response.status

    def _notify_later(self, module: str, ids: Sequence[str]) -> None:
        """Zoho notifies watching channels of API updates too (our own writes included)."""

        async def send() -> None:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                await self.deliver(module, "update", ids)

        task = asyncio.get_running_loop().create_task(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ HTTP
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_post("/oauth/v2/token", self._token)
        r.add_get("/crm/v8/settings/fields", self._fields)
        r.add_post("/crm/v8/settings/fields", self._create_field)
        r.add_post("/crm/v8/actions/watch", self._watch)
        r.add_get("/crm/v8/users", self._users)
        r.add_get("/crm/v8/{module}/deleted", self._deleted)
        r.add_get("/crm/v8/{module}", self._list)
        r.add_put("/crm/v8/{module}", self._update)
        return app

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        with self._lock:
            self.calls.append((request.method, request.path))
        if request.path.startswith("/oauth/"):
            response: web.StreamResponse = await handler(request)
            return response
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        now = self.clock()
        with self._lock:
            valid = scheme == "Zoho-oauthtoken" and self.tokens.get(token, 0.0) > now
            limited = bool(self._forced)
            forced = self._forced.pop(0) if self._forced else None
            used = sum(c for t, c in self.spent if t > now - 86400)
        if not valid:
            return _error(401, "INVALID_TOKEN", "invalid oauth token")
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            status, delay = fault
            if delay:
                await asyncio.sleep(delay)
            if status:
                return _error(status, "INTERNAL_ERROR", "Internal Server Error")
        if limited:
            headers = {"Retry-After": f"{forced:g}"} if forced is not None else {}
            response = _error(429, "TOO_MANY_REQUESTS", "too many requests")
            response.headers.update(headers)
            return response
        if used >= self.daily_credits:
            return _error(429, "TOO_MANY_REQUESTS", "API credits for the last 24 hours are used up")
        with self._lock:
            if self.concurrency is not None and self.in_flight >= self.concurrency:
                self.concurrency_refusals += 1
                return _error(429, "TOO_MANY_REQUESTS", "concurrency limit exceeded")
            self.in_flight += 1
            self.spent.append((now, 1))
        try:
            response = await handler(request)
        finally:
            with self._lock:
                self.in_flight -= 1
        return response

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        with self._lock:
            self.token_requests += 1
        if request.query.get("refresh_token") or request.query.get("client_secret"):
            # we only ever send credentials in the body; a query string would reach logs
            return web.json_response({"error": "credentials_in_query_string"}, status=400)
        if form.get("grant_type") != "refresh_token":
            return web.json_response({"error": "unsupported_grant_type"})
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return web.json_response({"error": "invalid_client"})
        if form.get("refresh_token") != self.refresh_token:
            return web.json_response({"error": "invalid_code"})
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        with self._lock:
            self.tokens[token] = self.clock() + self.token_lifetime
        return web.json_response(
            {
                "access_token": token,
                "scope": "ZohoCRM.modules.ALL ZohoCRM.settings.ALL ZohoCRM.notifications.ALL"
                + ("" if "ZohoCRM.users.READ" in self.missing_scopes else " ZohoCRM.users.READ"),
                "api_domain": f"{request.scheme}://{request.host}",
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
            }
        )

    def _module(self, request: web.Request) -> str | None:
        """The module named, if this org has it (else INVALID_MODULE, as for a disabled one)."""
        module = request.match_info.get("module") or request.query.get("module") or ""
        return module if module in self.modules else None

    def _since(self, request: web.Request) -> int | None:
        header = request.headers.get("If-Modified-Since")
        if header is None:
            return None
        return self._seconds(header)

    async def _list(self, request: web.Request) -> web.Response:
        module = self._module(request)
        if module is None:
            return _error(400, "INVALID_MODULE", "the module name given seems to be invalid")
        q = request.query
        fields = [f for f in q.get("fields", "").split(",") if f]
        with self._lock:
            if "ids" in q:
                ids = q["ids"].split(",")
                rows = [self.records[module][i] for i in ids if i in self.records[module]]
                if not rows:
                    return web.Response(status=204)
                return web.json_response({"data": [self._pick(r, fields) for r in rows]})
            if not fields:
                return _error(
                    400,
                    "REQUIRED_PARAM_MISSING",
                    "One of the expected parameter is missing",
                    param="fields",
                )
            if len(fields) > 50:
                return _error(400, "LIMIT_EXCEEDED", "fields limit exceeded", limit=50)
            sort_by = q.get("sort_by", "id")
            if sort_by not in ("id", "Created_Time", "Modified_Time"):
                return _error(400, "INVALID_DATA", "invalid data", param="sort_by")
            try:
                per_page = int(q.get("per_page", "200"))
                page = int(q.get("page", "1"))
            except ValueError:
                return _error(400, "INVALID_DATA", "invalid data", param="page")
            if not 1 <= per_page <= 200 or page < 1:
                return _error(400, "INVALID_DATA", "invalid data", param="per_page")
            if "page" in q and "page_token" in q:
                return _error(400, "INVALID_REQUEST", "page and page_token cannot go together")
            since = self._since(request)
            rows = [
                r
                for r in self.records[module].values()
                if since is None or self._seconds(r["Modified_Time"]) > since
            ]

            def key(r: dict[str, Any]) -> tuple[Any, int]:
                value = self._seconds(r[sort_by]) if sort_by != "id" else 0
                return (value, int(r["id"]))

            rows.sort(key=key, reverse=q.get("sort_order", "desc") == "desc" and sort_by != "id")
            if "page_token" in q:
                self.page_tokens_used += 1
                found = self._page_tokens.get(q["page_token"])
                if found is None or found[2] < self.clock():
                    return _error(400, "INVALID_DATA", "invalid page_token", param="page_token")
                _, offset, _ = found
            else:
                offset = (page - 1) * per_page
                if offset + per_page > 2000:
                    return _error(
                        400,
                        "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                        "you cannot fetch more than 2000 records with page; use page_token",
                    )
            chunk = rows[offset : offset + per_page]
            if not chunk:
                return web.Response(status=204)
            end = offset + per_page
            more = end < len(rows)
            info: dict[str, Any] = {
                "per_page": per_page,
                "count": len(chunk),
                "page": page if "page_token" not in q else None,
                "sort_by": sort_by,
                "sort_order": q.get("sort_order", "desc"),
                "more_records": more,
                "next_page_token": None,
                "previous_page_token": None,
                "page_token_expiry": None,
            }
            if more and end < self.record_limit:  # past 100,000 records: no further token
                token = secrets.token_hex(20)
                expires = self.clock() + 86400
                self._page_tokens[token] = (module, end, expires)
                info["next_page_token"] = token
                info["page_token_expiry"] = self._time(expires)
            return web.json_response({"data": [self._pick(r, fields) for r in chunk], "info": info})

    @staticmethod
    def _pick(record: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
        out = {"id": record["id"]}
        for f in fields or list(record):
            if f in record:
                out[f] = record[f]
            if f == "What_Id" and "$se_module" in record:
                out["$se_module"] = record["$se_module"]
        copied: dict[str, Any] = json.loads(json.dumps(out))
        return copied

    async def _deleted(self, request: web.Request) -> web.Response:
        module = self._module(request)
        if module is None:
            return _error(400, "INVALID_MODULE", "the module name given seems to be invalid")
        q = request.query
        kind = q.get("type", "all")
        if kind not in ("all", "recycle", "permanent"):
            return _error(400, "INVALID_DATA", "invalid data", param="type")
        per_page = min(200, int(q.get("per_page", "200")))
        page = int(q.get("page", "1"))
        since = self._since(request)
        with self._lock:
            rows = [
                d
                for d in self.deleted[module]
                if (kind == "all" or d["type"] == kind)
                and (since is None or self._seconds(d["deleted_time"]) > since)
            ]
        chunk = rows[(page - 1) * per_page : page * per_page]
        if not chunk:
            return web.Response(status=204)
        more = page * per_page < len(rows)
        return web.json_response(
            {
                "data": json.loads(json.dumps(chunk)),
                "info": {
                    "per_page": per_page,
                    "count": len(chunk),
                    "page": page,
                    "more_records": more,
                },
            }
        )

    async def _update(self, request: web.Request) -> web.Response:
        module = self._module(request)
        if module is None:
            return _error(400, "INVALID_MODULE", "the module name given seems to be invalid")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "INVALID_DATA", "body is not JSON")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not data:
            return _error(400, "REQUIRED_PARAM_MISSING", "data is missing", param="data")
        if len(data) > 100:
            return _error(400, "LIMIT_EXCEEDED", "cannot update more than 100 records", limit=100)
        results = []
        with self._lock:
            known = {a for a, _, _ in _STANDARD[module] + _COMMON} | set(self.custom[module])
            for item in data:
                rid = str(item.get("id", ""))
                record = self.records[module].get(rid)
                unknown = [k for k in item if k != "id" and k not in known]
                if record is None:
                    results.append(
                        self._failure(
                            "INVALID_DATA", "the related id given seems to be invalid", "id"
                        )
                    )
                elif unknown:
                    results.append(self._failure("INVALID_DATA", "invalid data", unknown[0]))
                else:
                    values = {k: v for k, v in item.items() if k != "id"}
                    self.updates.append((module, rid, values))
                    self.update(module, rid, values, by=API_USER)
                    results.append(
                        {
                            "code": "SUCCESS",
                            "details": {
                                "Modified_Time": record["Modified_Time"],
                                "Modified_By": {"name": "crm-pulse", "id": API_USER["id"]},
                                "Created_Time": record["Created_Time"],
                                "id": rid,
                            },
                            "message": "record updated",
                            "status": "success",
                        }
                    )
        ok = sum(1 for r in results if r["status"] == "success")
        if ok and self.notify_api_writes:
            done = [
                str(item.get("id"))
                for item, r in zip(data, results, strict=True)
                if r["status"] == "success"
            ]
            self._notify_later(module, done)
        status = 200 if ok == len(results) else 207 if ok else 400
        return web.json_response({"data": results}, status=status)

    @staticmethod
    def _failure(code: str, message: str, api_name: str) -> dict[str, Any]:
        return {
            "code": code,
            "details": {"api_name": api_name, "json_path": f"$.data[0].{api_name}"},
            "message": message,
            "status": "error",
        }

    def _field_list(self, module: str) -> list[dict[str, Any]]:
        out = []
        for api, label, kind in _STANDARD[module] + _COMMON:
            field: dict[str, Any] = {
                "api_name": api,
                "field_label": label,
                "display_label": label,
                "data_type": kind,
                "custom_field": False,
            }
            if module == "Deals" and api == "Stage":
                field["pick_list_values"] = [
                    {
                        "display_value": value,
                        "actual_value": value,
                        "forecast_type": forecast,
                        "forecast_category": {"name": category, "id": str(n)},
                        "probability": probability,
                        "sequence_number": n,
                        "type": "used",
                    }
                    for n, (value, forecast, category, probability) in enumerate(self.stages, 1)
                ]
            out.append(field)
        return out + list(self.custom[module].values())

    async def _users(self, request: web.Request) -> web.Response:
        """``GET users?type=CurrentUser``: the user the token acts as (other types: everyone)."""
        if "ZohoCRM.users.READ" in self.missing_scopes:
            return _error(401, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL")
        users = [API_USER] if request.query.get("type") == "CurrentUser" else [REP, API_USER]
        rows = [{"id": u["id"], "full_name": u["name"], "email": u["email"]} for u in users]
        return web.json_response({"users": rows})

    async def _fields(self, request: web.Request) -> web.Response:
        module = self._module(request)
        if module is None:
            return _error(400, "INVALID_MODULE", "the module name given seems to be invalid")
        with self._lock:
            return web.json_response({"fields": json.loads(json.dumps(self._field_list(module)))})

    async def _create_field(self, request: web.Request) -> web.Response:
        module = self._module(request)
        if module is None:
            return _error(400, "INVALID_MODULE", "the module name given seems to be invalid")
        body = await request.json()
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, list) or len(fields) != 1 or not isinstance(fields[0], dict):
            return _error(400, "INVALID_DATA", "fields must hold one field", param="fields")
        spec = fields[0]
        label, kind = spec.get("field_label"), spec.get("data_type")
        if not label or kind not in ("double", "currency", "integer", "text", "date"):
            return _error(400, "MANDATORY_NOT_FOUND", "field_label and data_type are required")
        with self._lock:
            if len(self.custom[module]) >= self.custom_field_limit:
                return _error(
                    400,
                    "LIMIT_EXCEEDED",
                    "custom field limit of the edition reached",
                    limit=self.custom_field_limit,
                )
            if any(f["field_label"] == label for f in self._field_list(module)):
                return _error(400, "DUPLICATE_DATA", "duplicate data", api_name="field_label")
            api = self.add_field(module, str(label), str(kind))
            created = self.custom[module][api]
        return web.json_response(
            {
                "fields": [
                    {
                        "code": "SUCCESS",
                        "details": {"id": created["id"], "api_name": api},
                        "message": "field created",
                        "status": "success",
                    }
                ]
            },
            status=201,
        )

    async def _watch(self, request: web.Request) -> web.Response:
        body = await request.json()
        watch = body.get("watch") if isinstance(body, dict) else None
        if not isinstance(watch, list) or not 1 <= len(watch) <= 50:
            return _error(400, "INVALID_DATA", "watch must hold 1 to 50 channels")
        results = []
        for item in watch:
            token = item.get("token")
            if not item.get("notify_url") or not item.get("channel_id") or not item.get("events"):
                return _error(
                    400, "MANDATORY_NOT_FOUND", "notify_url, channel_id and events are required"
                )
            if token is not None and len(str(token)) > 50:
                return _error(
                    400, "INVALID_DATA", "token is longer than 50 characters", api_name="token"
                )
            for event in item["events"]:
                module, _, action = str(event).partition(".")
                if module not in MODULES or action not in ("all", "create", "edit", "delete"):
                    return _error(400, "INVALID_DATA", f"invalid event {event}", api_name="events")
            now = self.clock()
            expiry = item.get("channel_expiry")
            expires_at = now + 3600
            if expiry:
                wanted = datetime.fromisoformat(str(expiry)).timestamp()
                if now < wanted <= now + 7 * 86400:
                    expires_at = wanted
            channel_id = str(item["channel_id"])
            with self._lock:
                self.channels[channel_id] = {
                    "channel_id": channel_id,
                    "events": list(item["events"]),
                    "notify_url": str(item["notify_url"]),
                    "token": token,
                    "expires_at": expires_at,
                }
            results.append(
                {
                    "code": "SUCCESS",
                    "details": {
                        "events": [
                            {
                                "channel_expiry": self._time(expires_at),
                                "resource_uri": f"https://www.zohoapis.com/crm/v8/{e.split('.')[0]}",
                                "resource_id": str(_ID_BASE + n),
                                "resource_name": e.split(".")[0],
                                "channel_id": channel_id,
                            }
                            for n, e in enumerate(item["events"])
                        ]
                    },
                    "message": "Successfully subscribed for actions-watch of the given module",
                    "status": "success",
                }
            )
        return web.json_response({"watch": results}, status=201)
