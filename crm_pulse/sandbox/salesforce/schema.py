"""The org's schema over HTTP: ``sobjects/{type}/describe`` and the Tooling API's
``CustomField``."""

from __future__ import annotations

from aiohttp import web

from .model import _READ_ONLY, _error
from .state import _Org


class _Schema(_Org):
    """Describe and custom fields."""

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
