"""A fake Salesforce org (REST API) for tests and the sandbox.

Serves what the connector uses, as the contracts describe: SOQL ``query``/``queryAll`` with
``nextRecordsUrl`` paging (an absolute path), ``sobjects/<type>/describe``, sObject Collections
``PATCH composite/sobjects`` (at most 200 records, per-record results in order, row locks on
demand, ``ENTITY_IS_DELETED``), Tooling ``CustomField`` creation, the OAuth client-credentials
token endpoint, the ``Sforce-Limit-Info`` header on every answer and ``403
REQUEST_LIMIT_EXCEEDED`` once the daily limit is used. It understands the small SOQL subset the
connector sends and answers anything else with ``MALFORMED_QUERY``, as Salesforce would.
:meth:`FakeSalesforce.outbound_message` builds Outbound Message SOAP requests.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

__all__ = ["FakeSalesforce", "sf_time"]

_PREFIX = {
    "Account": "001",
    "Contact": "003",
    "Lead": "00Q",
    "Opportunity": "006",
    "Case": "500",
    "Task": "00T",
    "Event": "00U",
    "User": "005",
}
_STANDARD = {
    "Opportunity": [
        "Amount",
        "StageName",
        "IsClosed",
        "IsWon",
        "CloseDate",
        "Type",
        "OwnerId",
        "AccountId",
        "LastStageChangeDate",
    ],
    "Account": ["Name", "Website", "OwnerId"],
    "Contact": ["AccountId", "OwnerId", "Email"],
    "Lead": ["OwnerId", "Email", "IsConverted", "ConvertedDate"],
    "Case": ["Status", "IsClosed", "ClosedDate", "OwnerId", "AccountId"],
    "Task": ["OwnerId", "AccountId", "TaskSubtype", "ActivityDate"],
    "Event": ["OwnerId", "AccountId", "ActivityDateTime"],
    "User": ["Name"],
}
_COMMON = ["Id", "CreatedDate", "SystemModstamp", "IsDeleted"]
PAGE = 200
COLLECTION_MAX = 200
_QUERY = re.compile(
    r"^SELECT\s+(?P<fields>[\w\s,.]+?)\s+FROM\s+(?P<obj>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+ORDER\s+BY\s+(?P<order>[\w\s,]+?))?(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE,
)
_COND = re.compile(r"^\s*(\w+)\s*(=|!=|>=|<=|>|<|IN)\s*(.+?)\s*$", re.IGNORECASE)


def sf_time(ms: int) -> str:
    """Salesforce datetime: 2026-01-02T09:00:00.000+0000."""
    return (
        datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{ms % 1000:03d}+0000"
    )


def _parse_time(text: str) -> int:
    text = text.replace("+0000", "+00:00")
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


class _Malformed(Exception):
    pass


class FakeSalesforce:
    def __init__(
        self,
        session_id: str = "00Dfake!session",
        *,
        org_id: str = "00D000000000001AAA",
        client_id: str = "fake-client",
        client_secret: str = "fake-secret",
        daily_limit: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session_id = session_id
        self.org_id = org_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.daily_limit = daily_limit
        self.used = 0
        self.clock = clock
        self.records: dict[str, dict[str, dict[str, Any]]] = {o: {} for o in _PREFIX}
        self.custom_fields: dict[str, dict[str, str]] = {o: {} for o in _PREFIX}
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.locked: dict[str, int] = {}
        self._forced: list[float] = []
        self._cursors: dict[str, list[dict[str, Any]]] = {}
        self._next = 1
        self._last_ms = 0
        self._lock = threading.RLock()

    # ------------------------------------------------------------ changing the org
    def now_ms(self) -> int:
        with self._lock:
            ms = max(int(self.clock() * 1000), self._last_ms + 1)
            self._last_ms = ms
            return ms

    def add_object(self, name: str, fields: Sequence[str], prefix: str = "a01") -> None:
        with self._lock:
            _PREFIX[name] = prefix
            _STANDARD[name] = list(fields)
            self.records.setdefault(name, {})
            self.custom_fields.setdefault(name, {})

    def add_field(self, sobject: str, name: str, type_: str = "double") -> None:
        with self._lock:
            self.custom_fields[sobject][name] = type_

    def create(
        self, sobject: str, fields: Mapping[str, Any], *, modstamp_ms: int | None = None
    ) -> str:
        with self._lock:
            self._next += 1
            rid = f"{_PREFIX[sobject]}{self._next:012d}AAA"[:18]
            now = modstamp_ms if modstamp_ms is not None else self.now_ms()
            record: dict[str, Any] = dict.fromkeys(_STANDARD[sobject])
            record.update({"Id": rid, "CreatedDate": sf_time(now), "IsDeleted": False})
            record.update(fields)
            record["SystemModstamp"] = sf_time(now)
            self.records[sobject][rid] = record
            return rid

    def update(self, sobject: str, rid: str, fields: Mapping[str, Any]) -> None:
        with self._lock:
            record = self.records[sobject][rid]
            if "StageName" in fields and fields["StageName"] != record.get("StageName"):
                record["LastStageChangeDate"] = sf_time(self.clock_ms())
            record.update(fields)
            record["SystemModstamp"] = sf_time(self.now_ms())

    def clock_ms(self) -> int:
        return int(self.clock() * 1000)

    def delete(self, sobject: str, rid: str) -> None:
        with self._lock:
            self.records[sobject][rid]["IsDeleted"] = True
            self.records[sobject][rid]["SystemModstamp"] = sf_time(self.now_ms())

    def undelete(self, sobject: str, rid: str) -> None:
        with self._lock:
            self.records[sobject][rid]["IsDeleted"] = False
            self.records[sobject][rid]["SystemModstamp"] = sf_time(self.now_ms())

    def lock(self, rid: str, times: int = 1) -> None:
        """The next ``times`` writes to this record fail with UNABLE_TO_LOCK_ROW."""
        self.locked[rid] = times

    def rate_limit(self, requests: int, retry_after: float) -> None:
        """The next calls are throttled (HTTP 429 with Retry-After, as a gateway in front of the
        org answers); the daily limit is :attr:`daily_limit`."""
        with self._lock:
            self._forced = [retry_after] * requests

    def value(self, sobject: str, rid: str, field: str) -> Any:
        return self.records[sobject][rid].get(field)

    def write_calls(self) -> int:
        return sum(1 for m, p, _ in self.calls if m == "PATCH" and p.endswith("composite/sobjects"))

    def outbound_message(
        self, sobject: str, ids: Sequence[str], *, org_id: str | None = None
    ) -> bytes:
        """A SOAP Outbound Message body announcing these records (fields: Id and SystemModstamp)."""
        notes = []
        for i, rid in enumerate(ids):
            record = self.records[sobject][rid]
            notes.append(
                f'<Notification><Id>04l00000000{i:04d}</Id><sObject xsi:type="sf:{sobject}">'
                f"<sf:Id>{escape(rid)}</sf:Id><sf:SystemModstamp>{escape(str(record['SystemModstamp']))}</sf:SystemModstamp>"
                "</sObject></Notification>"
            )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            '<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound" '
            'xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
            f"<OrganizationId>{escape(org_id or self.org_id)}</OrganizationId><ActionId>04k000000000001</ActionId>"
            '<SessionId xsi:nil="true"/><EnterpriseUrl>https://fake/services/Soap/c/59.0</EnterpriseUrl>'
            f"{''.join(notes)}</notifications></soapenv:Body></soapenv:Envelope>"
        ).encode()

    # ------------------------------------------------------------ HTTP
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_post("/services/oauth2/token", self._token)
        r.add_get("/services/data/{v}/query/", self._query)
        r.add_get("/services/data/{v}/query", self._query)
        r.add_get("/services/data/{v}/queryAll/", self._query_all)
        r.add_get("/services/data/{v}/queryAll", self._query_all)
        r.add_get("/services/data/{v}/query/{locator}", self._more)
        r.add_get("/services/data/{v}/sobjects/{type}/describe/", self._describe)
        r.add_get("/services/data/{v}/sobjects/{type}/describe", self._describe)
        r.add_patch("/services/data/{v}/composite/sobjects", self._collections)
        r.add_post("/services/data/{v}/tooling/sobjects/CustomField/", self._custom_field)
        r.add_post("/services/data/{v}/tooling/sobjects/CustomField", self._custom_field)
        return app

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        with self._lock:
            self.calls.append((request.method, request.path, dict(request.headers)))
            forced = self._forced.pop(0) if self._forced else None
        if request.path == "/services/oauth2/token":
            return await handler(request)  # type: ignore[no-any-return]
        if request.headers.get("Authorization") != f"Bearer {self.session_id}":
            return web.json_response(
                [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
                status=401,
            )
        limit = {"Sforce-Limit-Info": f"api-usage={self.used}/{self.daily_limit}"}
        if forced is not None:
            return web.json_response(
                [{"message": "Too many requests", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
                status=429,
                headers={**limit, "Retry-After": f"{forced:g}"},
            )
        with self._lock:
            if self.used >= self.daily_limit:
                return web.json_response(
                    [
                        {
                            "message": "TotalRequests Limit exceeded.",
                            "errorCode": "REQUEST_LIMIT_EXCEEDED",
                        }
                    ],
                    status=403,
                    headers=limit,
                )
            self.used += 1
            limit = {"Sforce-Limit-Info": f"api-usage={self.used}/{self.daily_limit}"}
        response: web.StreamResponse = await handler(request)
        response.headers.update(limit)
        return response

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return web.json_response(
                {"error": "invalid_client", "error_description": "invalid client credentials"},
                status=400,
            )
        return web.json_response(
            {
                "access_token": self.session_id,
                "instance_url": str(request.url.origin()),
                "token_type": "Bearer",
            }
        )

    def _run(self, soql: str, include_deleted: bool) -> list[dict[str, Any]]:
        m = _QUERY.match(soql.strip())
        if not m:
            raise _Malformed(f"unexpected token in: {soql[:80]}")
        sobject = m.group("obj")
        if sobject not in self.records:
            raise _Malformed(f"sObject type '{sobject}' is not supported.")
        names = [f.strip() for f in m.group("fields").split(",")]
        known = set(_STANDARD[sobject]) | set(_COMMON) | set(self.custom_fields[sobject])
        unknown = [n for n in names if n not in known]
        if unknown:
            raise _Malformed(f"No such column '{unknown[0]}' on entity '{sobject}'.")
        rows = [r for r in self.records[sobject].values() if include_deleted or not r["IsDeleted"]]
        if m.group("where"):
            for part in re.split(r"\s+AND\s+", m.group("where"), flags=re.IGNORECASE):
                rows = [r for r in rows if self._holds(r, part)]
        if m.group("order"):
            keys = [k.strip().split()[0] for k in m.group("order").split(",")]
            rows.sort(key=lambda r: tuple(self._sort_value(r, k) for k in keys))
        if m.group("limit"):
            rows = rows[: int(m.group("limit"))]
        out = []
        for r in rows:
            item: dict[str, Any] = {
                "attributes": {
                    "type": sobject,
                    "url": f"/services/data/v59.0/sobjects/{sobject}/{r['Id']}",
                }
            }
            for n in names:
                item[n] = r.get(n)
            out.append(item)
        return out

    @staticmethod
    def _sort_value(r: Mapping[str, Any], key: str) -> Any:
        value = r.get(key)
        if key in ("SystemModstamp", "CreatedDate") and value:
            return _parse_time(str(value))
        return "" if value is None else value

    def _holds(self, r: Mapping[str, Any], cond: str) -> bool:
        m = _COND.match(cond)
        if not m:
            raise _Malformed(f"unexpected condition: {cond[:60]}")
        name, op, raw = m.group(1), m.group(2).upper(), m.group(3)
        value = r.get(name)
        if op == "IN":
            items = [x.strip().strip("'") for x in raw.strip("()").split(",")]
            return str(value) in items
        target: Any
        if raw.lower() in ("true", "false"):
            target = raw.lower() == "true"
        elif raw.startswith("'") and raw.endswith("'"):
            target = raw[1:-1]
        elif re.match(r"^\d{4}-\d{2}-\d{2}T", raw):
            target = _parse_time(raw)
            value = _parse_time(str(value)) if value else None
        else:
            try:
                target = float(raw)
            except ValueError:
                raise _Malformed(f"unexpected value: {raw}") from None
        if value is None:
            return op == "!=" and target is not None
        ops: dict[str, Callable[[Any, Any], bool]] = {
            "=": lambda a, b: bool(a == b),
            "!=": lambda a, b: bool(a != b),
            ">": lambda a, b: bool(a > b),
            ">=": lambda a, b: bool(a >= b),
            "<": lambda a, b: bool(a < b),
            "<=": lambda a, b: bool(a <= b),
        }
        return ops[op](value, target)

    def _page(self, rows: list[dict[str, Any]], version: str) -> web.Response:
        first, rest = rows[:PAGE], rows[PAGE:]
        answer: dict[str, Any] = {"totalSize": len(rows), "done": not rest, "records": first}
        if rest:
            locator = f"01gFAKE{len(self._cursors):06d}-{PAGE}"
            self._cursors[locator] = rest
            answer["nextRecordsUrl"] = f"/services/data/{version}/query/{locator}"
        return web.json_response(answer)

    async def _query(self, request: web.Request, include_deleted: bool = False) -> web.Response:
        try:
            with self._lock:
                rows = self._run(request.query.get("q", ""), include_deleted)
                return self._page(rows, request.match_info["v"])
        except _Malformed as exc:
            return web.json_response(
                [{"message": str(exc), "errorCode": "MALFORMED_QUERY"}], status=400
            )

    async def _query_all(self, request: web.Request) -> web.Response:
        return await self._query(request, include_deleted=True)

    async def _more(self, request: web.Request) -> web.Response:
        with self._lock:
            rows = self._cursors.pop(request.match_info["locator"], None)
            if rows is None:
                return web.json_response(
                    [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}],
                    status=400,
                )
            return self._page(rows, request.match_info["v"])

    async def _describe(self, request: web.Request) -> web.Response:
        sobject = request.match_info["type"]
        if sobject not in self.records:
            return web.json_response(
                [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}],
                status=404,
            )
        fields = [
            {"name": n, "type": "string", "custom": False, "updateable": False}
            for n in [*_COMMON, *_STANDARD[sobject]]
        ]
        fields += [
            {"name": n, "type": t, "custom": True, "updateable": True}
            for n, t in self.custom_fields[sobject].items()
        ]
        return web.json_response({"name": sobject, "fields": fields})

    async def _collections(self, request: web.Request) -> web.Response:
        body = await request.json()
        records = body.get("records") or []
        if len(records) > COLLECTION_MAX:
            return web.json_response(
                [
                    {
                        "message": f"The number of records exceeds the limit of {COLLECTION_MAX}",
                        "errorCode": "EXCEEDED_ID_LIMIT",
                    }
                ],
                status=400,
            )
        if body.get("allOrNone") is not False:
            return web.json_response(
                [
                    {
                        "message": "this fake org expects allOrNone: false",
                        "errorCode": "INVALID_FIELD",
                    }
                ],
                status=400,
            )
        results = []
        with self._lock:
            for item in records:
                sobject = (item.get("attributes") or {}).get("type")
                rid = item.get("id")
                fields = {k: v for k, v in item.items() if k not in ("attributes", "id")}
                record = self.records.get(str(sobject), {}).get(str(rid))
                if record is None or record["IsDeleted"]:
                    results.append(
                        {
                            "id": rid,
                            "success": False,
                            "errors": [
                                {
                                    "statusCode": "ENTITY_IS_DELETED",
                                    "message": "entity is deleted",
                                    "fields": [],
                                }
                            ],
                        }
                    )
                    continue
                bad = [k for k in fields if k not in self.custom_fields[str(sobject)]]
                if bad:
                    results.append(
                        {
                            "id": rid,
                            "success": False,
                            "errors": [
                                {
                                    "statusCode": "INVALID_FIELD",
                                    "message": f"No such column '{bad[0]}' on sobject of type {sobject}",
                                    "fields": bad,
                                }
                            ],
                        }
                    )
                    continue
                if self.locked.get(str(rid), 0) > 0:
                    self.locked[str(rid)] -= 1
                    results.append(
                        {
                            "id": rid,
                            "success": False,
                            "errors": [
                                {
                                    "statusCode": "UNABLE_TO_LOCK_ROW",
                                    "message": "unable to obtain exclusive access to this record",
                                    "fields": [],
                                }
                            ],
                        }
                    )
                    continue
                self.update(str(sobject), str(rid), fields)
                results.append({"id": rid, "success": True, "errors": []})
        return web.json_response(results)

    async def _custom_field(self, request: web.Request) -> web.Response:
        body = await request.json()
        full = str(body.get("FullName", ""))
        sobject, _, name = full.partition(".")
        if not name.endswith("__c") or sobject not in self.records:
            return web.json_response(
                [{"message": f"invalid FullName {full!r}", "errorCode": "INVALID_FIELD"}],
                status=400,
            )
        if name in self.custom_fields[sobject]:
            return web.json_response(
                [{"message": "duplicate developer name", "errorCode": "DUPLICATE_DEVELOPER_NAME"}],
                status=400,
            )
        self.add_field(
            sobject, name, str((body.get("Metadata") or {}).get("type", "Number")).lower()
        )
        return web.json_response(
            {"id": f"00N{len(self.custom_fields[sobject]):015d}", "success": True, "errors": []},
            status=201,
        )
