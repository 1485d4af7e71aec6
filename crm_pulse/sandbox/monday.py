"""A fake monday.com account (GraphQL API v2, monday CRM boards) for tests and the sandbox.

One endpoint (``POST /v2``) reads GraphQL documents with :mod:`.graphql` and answers the
operations crm-pulse uses: ``boards (ids) { id name columns { id title type settings_str }
items_page (limit, query_params) { cursor items {...} } }``, ``next_items_page (cursor,
limit)``, ``items (ids)`` (archived and deleted items included, with their ``state``),
``complexity { before after query reset_in_x_seconds }``, and the mutations
``change_multiple_column_values``, ``create_column`` and ``create_webhook`` (which first POSTs
the URL challenge and keeps the webhook only if it is echoed).

As monday documents: items come 1..500 per page; a cursor is valid for 60 minutes after the
first request (then ``CursorExpiredError``); every call costs complexity points against a budget
per minute; the token goes in ``Authorization`` and the version in ``API-Version`` (both
recorded).

Failures on demand, in the shapes monday documents (docs/connect-monday.md names the pages),
chosen by the request's ``API-Version`` where monday changed them:

* complexity budget (:meth:`FakeMonday.exhaust_complexity`, or a budget really spent): before
  2025-01 the old top-level ``ComplexityException`` body ("... reset in N seconds"); 2025-01 and
  2025-04 ``COMPLEXITY_BUDGET_EXHAUSTED`` with ``retry_in_seconds`` and the budget fields; from
  2025-07 only ``code`` and ``retry_in_seconds``; all inside an HTTP 200, as application errors;
* the minute limit (:meth:`~FakeMonday.rate_limit`): HTTP 429 with ``Retry-After``;
* the daily call limit (:meth:`~FakeMonday.exhaust_daily`): ``DAILY_LIMIT_EXCEEDED`` until the
  next midnight UTC (or :meth:`~FakeMonday.reset_daily`), HTTP 429 with ``Retry-After``;
* 5xx and slow answers (:meth:`~FakeMonday.fail`): the documented 500 body
  ``{"error_message": "Internal server error", "status_code": 500}``;
* expired cursors (:meth:`~FakeMonday.expire_cursors`): ``CursorException`` "CursorExpiredError:
  ..." (top-level before 2025-01, in ``errors`` after).

Every answer passes :mod:`.contracts` (monday's GraphQL types) when the checks are on. Column
values are kept in monday's raw JSON forms (status ``{"index", "changed_at"}``, people
``{"personsAndTeams"}``, date ``{"date", "time"}``, board_relation ``{"linkedPulseIds"}``...).
``updated_at`` has one-second resolution; an item changed twice in one second gets the next
second, so versions still grow.

Boards are made from monday CRM's templates (:data:`TEMPLATES`) or by hand. Webhook deliveries
(:meth:`FakeMonday.webhook`, :meth:`FakeMonday.deliver`) carry the event envelope monday sends
and, when the fake has a signing secret, a JWT in ``Authorization`` signed with it (``aud`` the
URL, ``exp`` five minutes on).
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import jwt
from aiohttp import web

from . import contracts
from .graphql import GraphQLError, parse, project

__all__ = ["TEMPLATES", "FakeMonday"]

CURSOR_TTL = 3600.0
BUDGET = 5_000_000
CURRENT_VERSION = "2025-10"
"""What an answer looks like when a call names no API-Version (monday: "current")."""
CURSOR_EXPIRED = (
    "CursorExpiredError: The cursor provided for pagination has expired. Please refresh your "
    "query and obtain a new cursor to continue fetching items"
)
_VERSION: contextvars.ContextVar[str] = contextvars.ContextVar(
    "monday_api_version", default=CURRENT_VERSION
)

TEMPLATES: dict[str, list[tuple[str, str, list[str] | None]]] = {
    # (title, type, status labels) of monday CRM's boards, as crm-pulse's defaults expect them
    "deals": [
        ("Deal stage", "status", ["New", "Discovery", "Proposal", "Negotiation", "Won", "Lost"]),
        ("Owner", "people", None),
        ("Deal value", "numbers", None),
        ("Accounts", "board_relation", None),
        ("Expected close date", "date", None),
        ("Close probability", "numbers", None),
    ],
    "accounts": [
        ("Owner", "people", None),
        ("Domain", "text", None),
        ("Industry", "status", ["Software", "Retail", "Finance", "Other"]),
    ],
    "contacts": [
        ("Owner", "people", None),
        ("Accounts", "board_relation", None),
        ("Email", "email", None),
        ("Type", "status", ["Lead", "Customer", "Partner"]),
    ],
    "activities": [
        ("Owner", "people", None),
        ("Activity type", "status", ["Call", "Meeting", "Email", "Task"]),
        ("Date", "date", None),
        ("Accounts", "board_relation", None),
    ],
}


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


class _Refusal(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: Mapping[str, str] = {}):
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.headers = dict(headers)


def _error(message: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code, **extra}}]}


def _legacy(version: str) -> bool:
    """API versions before 2025-01 answer errors in the old top-level format."""
    return version < "2025-01"


def _complexity_error(wait: int, cost: int, left: int, limit: int) -> dict[str, Any]:
    """The complexity-budget error of the request's API version (HTTP 200)."""
    version = _VERSION.get()
    if _legacy(version):
        message = (
            f"Complexity budget exhausted, query cost {cost} budget remaining {left} "
            f"out of {limit} reset in {wait} seconds"
        )
        return {
            "error_code": "ComplexityException",
            "status_code": 429,
            "error_message": message,
            "error_data": {},
            "errors": [message],
        }
    extra: dict[str, Any] = {"retry_in_seconds": wait}
    if version < "2025-07":  # simplified in 2025-07: no budget fields, no status_code
        extra.update(
            complexity=cost,
            complexity_budget_left=left,
            complexity_budget_limit=limit,
            status_code=429,
        )
    return _error("Complexity budget exhausted", "COMPLEXITY_BUDGET_EXHAUSTED", **extra)


def _cursor_expired() -> dict[str, Any]:
    if _legacy(_VERSION.get()):
        return {
            "error_code": "CursorException",
            "status_code": 200,
            "error_message": CURSOR_EXPIRED,
            "error_data": {},
        }
    return _error(CURSOR_EXPIRED, "CursorException", status_code=200)


def _until_midnight(now: float) -> float:
    """The next midnight UTC (monday resets the daily call limit then)."""
    return (math.floor(now / 86400) + 1) * 86400.0


class FakeMonday:
    def __init__(
        self,
        token: str = "monday-test-token",
        *,
        clock: Callable[[], float] = time.time,
        signing_secret: str | None = None,
        budget: int = BUDGET,
        account_id: int = 4242,
    ) -> None:
        self.token = token
        self.clock = clock
        self.signing_secret = signing_secret
        self.budget = budget
        self.account_id = account_id
        self.boards: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.versions: list[str | None] = []
        self._cursors: dict[str, tuple[list[str], int, float]] = {}
        self._spent: list[tuple[float, int]] = []
        self._forced: list[tuple[str, float]] = []
        self.faults: list[tuple[int, float]] = []
        """Injected failures for the next calls: (5xx status or 0, delay seconds)."""
        self.daily_until: float | None = None
        """While set and not reached: the daily call limit is used up."""
        self.complexity_refusals = 0
        """Calls refused because the complexity budget of the last minute was spent."""
        self._lock = threading.RLock()
        self._next = 5_000_000_000

    # ------------------------------------------------------------ changing the account
    def _id(self) -> str:
        self._next += 1
        return str(self._next)

    def add_board(self, name: str, template: str | None = None) -> str:
        """A board, with the columns of a monday CRM template (deals, accounts, contacts,
        activities) when one is named."""
        with self._lock:
            bid = str(1_000_000 + len(self.boards) + 1)
            self.boards[bid] = {"id": bid, "name": name, "columns": [], "items": []}
            for title, kind, labels in TEMPLATES.get(template or "", []):
                self.add_column(bid, title, kind, labels)
            return bid

    def add_column(
        self, board: str, title: str, kind: str = "numbers", labels: list[str] | None = None
    ) -> str:
        with self._lock:
            columns = self.boards[board]["columns"]
            base = kind.replace("board_relation", "connect_boards")[:12]
            cid = f"{base}_{len(columns) + 1}"
            settings: dict[str, Any] = {}
            if labels:
                settings["labels"] = {str(i): label for i, label in enumerate(labels)}
            columns.append({"id": cid, "title": title, "type": kind, "settings": settings})
            return cid

    def column(self, board: str, title: str) -> dict[str, Any]:
        for c in self.boards[board]["columns"]:
            if c["title"] == title or c["id"] == title:
                return dict(c)
        raise KeyError(f"no column {title!r} on board {board}")

    def _raw(self, column: dict[str, Any], value: Any, now: str) -> Any:
        """monday's raw JSON for a simple value given by a test (None clears)."""
        if value is None or value == "":
            return None
        kind = column["type"]
        if kind == "status":
            labels = {v: int(k) for k, v in column["settings"].get("labels", {}).items()}
            if value not in labels:
                raise KeyError(f"no label {value!r} on {column['title']}")
            return {"index": labels[value], "post_id": None, "changed_at": now}
        if kind == "numbers":
            return str(value)
        if kind == "people":
            return {"personsAndTeams": [{"id": int(value), "kind": "person"}], "changed_at": now}
        if kind == "date":
            text = str(value).replace(" ", "T")
            day, _, at = text.partition("T")
            return {"date": day, "time": at.rstrip("Z") or None, "changed_at": now}
        if kind == "board_relation":
            ids = value if isinstance(value, list) else [value]
            return {"linkedPulseIds": [{"linkedPulseId": int(i)} for i in ids]}
        if kind == "email":
            return {"email": str(value), "text": str(value)}
        return str(value)

    def _stamp(self, item: dict[str, Any], at: int | None) -> None:
        last = _seconds(item["updated_at"]) if item.get("updated_at") else 0
        now = at if at is not None else max(int(self.clock()), last + 1)
        item["updated_at"] = _iso(now)

    def create_item(
        self,
        board: str,
        name: str,
        values: Mapping[str, Any] | None = None,
        *,
        at: int | None = None,
    ) -> str:
        """An item; ``values`` by column title in simple forms (a status label, a number, a
        user id, "YYYY-MM-DD[THH:MM:SS]", linked item ids, an e-mail address, text)."""
        with self._lock:
            rid = self._id()
            now = _iso(at if at is not None else self.clock())
            item: dict[str, Any] = {
                "id": rid,
                "name": name,
                "board": board,
                "state": "active",
                "created_at": now,
                "values": {},
            }
            for title, value in (values or {}).items():
                column = self.column(board, title)
                item["values"][column["id"]] = self._raw(column, value, now)
            self._stamp(item, at)
            self.items[rid] = item
            self.boards[board]["items"].append(rid)
            return rid

    def update_item(self, rid: str, values: Mapping[str, Any], *, at: int | None = None) -> None:
        with self._lock:
            item = self.items[rid]
            self._stamp(item, at)
            for title, value in values.items():
                column = self.column(item["board"], title)
                item["values"][column["id"]] = self._raw(column, value, item["updated_at"])

    def set_state(self, rid: str, state: str) -> None:
        """``deleted``, ``archived`` or ``active`` (a restore)."""
        with self._lock:
            self.items[rid]["state"] = state
            self._stamp(self.items[rid], None)

    def delete_item(self, rid: str) -> None:
        self.set_state(rid, "deleted")

    def value(self, rid: str, title: str) -> Any:
        """A column's raw value (a numbers column: its number as text)."""
        with self._lock:
            item = self.items[rid]
            column = self.column(item["board"], title)
            return item["values"].get(column["id"])

    def rate_limit(self, requests: int, retry_after: float) -> None:
        """The next ``requests`` calls get HTTP 429 (minute limit) with this Retry-After."""
        with self._lock:
            self._forced = [("rate", retry_after)] * requests

    def exhaust_complexity(self, requests: int, retry_in: float) -> None:
        """The next ``requests`` calls meet the complexity-budget error of their API version,
        saying to retry in ``retry_in`` seconds (whole seconds, as monday counts them)."""
        with self._lock:
            self._forced = [("complexity", retry_in)] * requests

    def exhaust_daily(self, until: float | None = None) -> None:
        """The account's daily call limit is used up: every call answers
        ``DAILY_LIMIT_EXCEEDED`` until ``until`` (a Unix time; default the next midnight UTC,
        when monday resets it) or :meth:`reset_daily`."""
        with self._lock:
            self.daily_until = until if until is not None else _until_midnight(self.clock())

    def reset_daily(self) -> None:
        with self._lock:
            self.daily_until = None

    def fail(self, requests: int, status: int = 500, *, delay: float = 0.0) -> None:
        """The next ``requests`` calls answer ``status`` (a 5xx) after ``delay`` seconds
        (``status=0``: only the delay, then the real answer: a slow answer for timeouts)."""
        with self._lock:
            self.faults = [(status, delay)] * requests

    def expire_cursors(self) -> None:
        """Every cursor handed out so far is now older than 60 minutes."""
        with self._lock:
            self._cursors = {
                k: (ids, off, issued - CURSOR_TTL - 1)
                for k, (ids, off, issued) in self._cursors.items()
            }

    def write_calls(self) -> int:
        return sum(1 for c in self.calls if c == "change_multiple_column_values")

    # ------------------------------------------------------------ webhooks
    def webhook(
        self,
        event_type: str,
        rid: str,
        *,
        url: str,
        secret: str | None = None,
        column_title: str | None = None,
        trigger_uuid: str | None = None,
        expires_in: float = 300.0,
        audience: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of one delivery about an item (``create_pulse``,
        ``update_column_value``, ``delete_pulse``, ``archive_pulse``, ``restore_pulse``...)."""
        with self._lock:
            item = self.items.get(rid)
            board = item["board"] if item else next(iter(self.boards), "0")
            event: dict[str, Any] = {
                "app": "monday",
                "type": event_type,
                "triggerTime": datetime.fromtimestamp(self.clock(), UTC)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
                "subscriptionId": 1,
                "userId": 1,
                "originalTriggerUuid": None,
                "boardId": int(board),
                "pulseId": int(rid),
                "pulseName": item["name"] if item else "",
                "triggerUuid": trigger_uuid or uuid.uuid4().hex,
            }
            if column_title is not None and item is not None:
                column = self.column(board, column_title)
                event.update(
                    columnId=column["id"],
                    columnType=column["type"],
                    columnTitle=column["title"],
                    value=item["values"].get(column["id"]),
                )
        headers = {"Content-Type": "application/json", "User-Agent": "monday-webhooks"}
        key = secret if secret is not None else self.signing_secret
        if key is not None:
            now = int(self.clock())
            claims = {
                "accountId": self.account_id,
                "userId": 1,
                "aud": audience or url,
                "exp": now + int(expires_in),
                "iat": now,
                "shortLivedToken": "short-lived",
            }
            headers["Authorization"] = jwt.encode(claims, key, algorithm="HS256")
        return headers, json.dumps({"event": event}).encode()

    async def deliver(self, url: str, event_type: str, rid: str, **options: Any) -> int:
        """POST one delivery to ``url``; the HTTP status (0 if unreachable)."""
        headers, body = self.webhook(event_type, rid, url=url, **options)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    return response.status
            except (aiohttp.ClientError, TimeoutError):
                return 0

    async def _challenge(self, url: str) -> bool:
        token = base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).decode().rstrip("=")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            try:
                async with session.post(url, json={"challenge": token}) as response:
                    answer = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError):
                return False
        return isinstance(answer, dict) and answer.get("challenge") == token

    # ------------------------------------------------------------ HTTP
    def app(self) -> web.Application:
        app = web.Application(middlewares=[contracts.middleware("monday")])
        app.router.add_post("/v2", self._graphql)
        return app

    def _charge(self, cost: int) -> None:
        now = self.clock()
        self._spent = [(t, c) for t, c in self._spent if t > now - 60]
        used = sum(c for _, c in self._spent)
        if used + cost > self.budget:
            self.complexity_refusals += 1
            wait = max(1, int(self._spent[0][0] + 60 - now) + 1) if self._spent else 60
            raise _Refusal(200, _complexity_error(wait, cost, self.budget - used, self.budget))
        self._spent.append((now, cost))

    async def _graphql(self, request: web.Request) -> web.Response:
        version = request.headers.get("API-Version") or CURRENT_VERSION
        _VERSION.set(version)
        with self._lock:
            self.versions.append(request.headers.get("API-Version"))
            forced = self._forced.pop(0) if self._forced else None
            fault = self.faults.pop(0) if self.faults else None
            now = self.clock()
            if self.daily_until is not None and now >= self.daily_until:
                self.daily_until = None  # a new day (UTC)
            daily = self.daily_until
        if request.headers.get("Authorization", "").removeprefix("Bearer ") != self.token:
            return self._answer(
                401, _error("Not Authenticated", "UserUnauthorizedException", status_code=401)
            )
        if daily is not None:
            return self._answer(
                429,
                _error("Daily limit exceeded", "DAILY_LIMIT_EXCEEDED", status_code=429),
                {"Retry-After": str(max(1, math.ceil(daily - now)))},
            )
        if forced is not None:
            kind, wait = forced
            if kind == "rate":  # the minute limit: HTTP 429 and Retry-After
                return self._answer(
                    429,
                    _error("Rate Limit Exceeded", "RATE_LIMIT_EXCEEDED", status_code=429),
                    {"Retry-After": f"{wait:g}"},
                )
            whole = max(1, math.ceil(wait))
            return self._answer(200, _complexity_error(whole, 1000, 0, self.budget))
        if fault is not None:
            status, delay = fault
            if delay:
                await asyncio.sleep(delay)
            if status:
                return self._answer(
                    status, {"error_message": "Internal server error", "status_code": status}
                )
        try:
            body = await request.json()
        except ValueError:
            return self._answer(400, _error("Invalid JSON body", "JsonParseException"))
        if not isinstance(body, dict):
            return self._answer(400, _error("Invalid body", "JsonParseException"))
        variables = body.get("variables") or {}
        try:
            op = parse(
                str(body.get("query") or ""), variables if isinstance(variables, dict) else {}
            )
        except GraphQLError as exc:
            return self._answer(200, _error(str(exc), "GRAPHQL_PARSE_ERROR"))
        data: dict[str, Any] = {}
        try:
            for f in op.fields:
                with self._lock:
                    self.calls.append(f.name)
                if op.kind == "mutation":
                    value = await self._mutation(f.name, f.args)
                else:
                    with self._lock:
                        value = self._query(f.name, f.args)
                with self._lock:
                    data[f.alias] = project(value, f.selections)
        except _Refusal as refusal:
            return self._answer(refusal.status, refusal.body, refusal.headers)
        except GraphQLError as exc:
            return self._answer(200, _error(str(exc), "GRAPHQL_VALIDATION_FAILED"))
        return web.json_response({"data": data, "account_id": self.account_id})

    def _answer(
        self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> web.Response:
        """An error answer, with the account id monday adds to its bodies."""
        return web.json_response(
            {**body, "account_id": self.account_id}, status=status, headers=dict(headers or {})
        )

    # ------------------------------------------------------------ queries
    def _query(self, name: str, args: dict[str, Any]) -> Any:
        if name == "boards":
            self._charge(100)
            ids = [str(i) for i in args.get("ids") or self.boards]
            return [self._board(self.boards[i]) for i in ids if i in self.boards]
        if name == "next_items_page":
            return self._next_page(args)
        if name == "items":
            ids = [str(i) for i in args.get("ids") or []]
            self._charge(10 * len(ids) + 10)
            return [self._item(self.items[i]) for i in ids if i in self.items]
        if name == "complexity":
            used = sum(c for t, c in self._spent if t > self.clock() - 60)
            return {
                "before": self.budget - used,
                "after": self.budget - used,
                "query": 0,
                "reset_in_x_seconds": 60,
            }
        raise GraphQLError(f"Field '{name}' doesn't exist on type 'Query'")

    def _board(self, board: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": board["id"],
            "name": board["name"],
            "columns": [
                {
                    "id": c["id"],
                    "title": c["title"],
                    "type": c["type"],
                    "settings_str": json.dumps(c["settings"]),
                }
                for c in board["columns"]
            ],
            "items_page": lambda args: self._items_page(board, args),
        }

    def _limit(self, args: Mapping[str, Any]) -> int:
        limit = args.get("limit", 25)
        if not isinstance(limit, int) or not 1 <= limit <= 500:
            raise GraphQLError("limit must be between 1 and 500")
        return limit

    def _items_page(self, board: dict[str, Any], args: Mapping[str, Any]) -> dict[str, Any]:
        limit = self._limit(args)
        self._charge(1000 + 20 * limit)
        if args.get("cursor"):
            return self._next_page({"cursor": args["cursor"], "limit": limit})
        rows = [self.items[i] for i in board["items"] if self.items[i]["state"] == "active"]
        params = args.get("query_params") or {}
        for rule in params.get("rules") or []:
            rows = self._filter(rows, rule)
        for order in reversed(params.get("order_by") or []):
            if order.get("column_id") not in ("__last_updated__", "__creation_log__", "name"):
                raise GraphQLError(f"cannot order by {order.get('column_id')!r}")
            key = {"__last_updated__": "updated_at", "__creation_log__": "created_at"}.get(
                order["column_id"], "name"
            )
            rows.sort(
                key=lambda r: (r[key], int(r["id"])), reverse=order.get("direction") == "desc"
            )
        ids = [r["id"] for r in rows]
        token = hashlib.sha256(f"{uuid.uuid4()}".encode()).hexdigest()[:40]
        self._cursors[token] = (ids, 0, self.clock())
        return self._serve(token, limit)

    def _filter(self, rows: list[dict[str, Any]], rule: Mapping[str, Any]) -> list[dict[str, Any]]:
        if (
            rule.get("column_id") != "__last_updated__"
            or rule.get("compare_attribute") != "UPDATED_AT"
        ):
            raise GraphQLError(f"the fake filters only on __last_updated__ (got {rule})")
        value = rule.get("compare_value")
        if not (isinstance(value, list) and len(value) == 2 and value[0] == "EXACT"):
            raise GraphQLError("compare_value must be ['EXACT', 'YYYY-MM-DD']")
        day = str(value[1])[:10]
        op = rule.get("operator")
        if op == "greater_than_or_equals":
            return [r for r in rows if r["updated_at"][:10] >= day]
        if op == "lower_than_or_equal":
            return [r for r in rows if r["updated_at"][:10] <= day]
        raise GraphQLError(f"unsupported operator {op!r}")

    def _next_page(self, args: Mapping[str, Any]) -> dict[str, Any]:
        limit = self._limit(args)
        self._charge(1000 + 20 * limit)
        token = str(args.get("cursor") or "")
        if token not in self._cursors:
            raise GraphQLError("invalid cursor")
        _, _, issued = self._cursors[token]
        if self.clock() - issued > CURSOR_TTL:
            raise _Refusal(200, _cursor_expired())
        return self._serve(token, limit)

    def _serve(self, token: str, limit: int) -> dict[str, Any]:
        ids, offset, issued = self._cursors[token]
        page = [self.items[i] for i in ids[offset : offset + limit]]
        more = offset + limit < len(ids)
        if more:
            self._cursors[token] = (ids, offset + limit, issued)
        else:
            del self._cursors[token]
        return {"cursor": token if more else None, "items": [self._item(i) for i in page]}

    def _item(self, item: dict[str, Any]) -> dict[str, Any]:
        board = self.boards[item["board"]]
        values = []
        for c in board["columns"]:
            raw = item["values"].get(c["id"])
            values.append(
                {
                    "id": c["id"],
                    "type": c["type"],
                    "text": self._text(c, raw),
                    "value": None if raw is None else json.dumps(raw),
                    "column": {"id": c["id"], "title": c["title"], "type": c["type"]},
                }
            )
        return {
            "id": item["id"],
            "name": item["name"],
            "state": item["state"],
            "created_at": item["created_at"],
            "updated_at": item["updated_at"],
            "board": {"id": item["board"], "name": board["name"]},
            "column_values": values,
        }

    def _text(self, column: dict[str, Any], raw: Any) -> str | None:
        if raw is None:  # empty: status text is null, board_relation's always, others ""
            return None if column["type"] in ("status", "board_relation") else ""
        kind = column["type"]
        if kind == "status":
            return str(column["settings"]["labels"].get(str(raw["index"])))
        if kind == "people":
            return ", ".join(f"user {p['id']}" for p in raw["personsAndTeams"])
        if kind == "date":
            return f"{raw['date']} {raw['time'] or ''}".strip()
        if kind == "board_relation":
            # column values v2: connect boards (and mirror, dependency) text is always null
            # (changelog, 2023-10 hotfix "returns "" instead of null for most empty values")
            return None
        if kind == "email":
            return str(raw["email"])
        return str(raw)

    # ------------------------------------------------------------ mutations
    async def _mutation(self, name: str, args: dict[str, Any]) -> Any:
        if name == "change_multiple_column_values":
            with self._lock:
                self._charge(1000)
                return self._change(args)
        if name == "create_column":
            with self._lock:
                self._charge(1000)
                board = str(args.get("board_id"))
                if board not in self.boards:
                    raise GraphQLError("Board not found")
                if not args.get("title") or not args.get("column_type"):
                    raise GraphQLError("title and column_type are required")
                cid = self.add_column(board, str(args["title"]), str(args["column_type"]))
                return {k: v for k, v in self.column(board, cid).items() if k != "settings"}
        if name == "create_webhook":
            board, url = str(args.get("board_id")), str(args.get("url") or "")
            with self._lock:
                self._charge(1000)
                if board not in self.boards:
                    raise _Refusal(200, _error("Board not found", "InvalidArgumentException"))
            if not await self._challenge(url):
                raise _Refusal(
                    200,
                    _error(
                        "Failed to verify the webhook URL (challenge)", "InvalidArgumentException"
                    ),
                )
            with self._lock:
                wid = self._id()
                self.webhooks[wid] = {
                    "id": wid,
                    "board_id": board,
                    "url": url,
                    "event": str(args.get("event")),
                }
                return dict(self.webhooks[wid])
        raise GraphQLError(f"Field '{name}' doesn't exist on type 'Mutation'")

    def _change(self, args: Mapping[str, Any]) -> dict[str, Any]:
        board, rid = str(args.get("board_id")), str(args.get("item_id"))
        item = self.items.get(rid)
        if item is None or item["state"] == "deleted" or item["board"] != board:
            raise _Refusal(200, _error(f"Item {rid} not found in board", "InvalidItemIdException"))
        raw = args.get("column_values")
        try:
            values = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise _Refusal(
                200, _error("column_values is not JSON", "InvalidArgumentException")
            ) from None
        if not isinstance(values, dict):
            raise _Refusal(
                200, _error("column_values must be an object", "InvalidArgumentException")
            )
        columns = {c["id"]: c for c in self.boards[board]["columns"]}
        for cid, value in values.items():
            column = columns.get(cid)
            if column is None:
                raise _Refusal(
                    200,
                    _error(
                        f"This column ID doesn't exist for the board: {cid}",
                        "InvalidColumnIdException",
                    ),
                )
            if column["type"] == "numbers" and value not in ("", None):
                try:
                    float(str(value))
                except ValueError:
                    raise _Refusal(
                        200,
                        _error(f"invalid value for numbers column {cid}", "ColumnValueException"),
                    ) from None
        self._stamp(item, None)
        for cid, value in values.items():
            item["values"][cid] = (
                None
                if value in ("", None)
                else (str(value) if columns[cid]["type"] == "numbers" else value)
            )
        return self._item(item)
