"""Writes: ``PATCH composite/sobjects`` (sObject Collections) and ``POST sobjects/{type}``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from .model import _READ_ONLY, COLLECTION_MAX, _error
from .state import _Org


class _Writes(_Org):
    """sObject Collections updates and single-record creates."""

    async def _collections(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "JSON_PARSER_ERROR", "request body is not JSON", {})
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records:
            return _error(400, "INVALID_FIELD", "records: a list of records is required", {})
        if len(records) > COLLECTION_MAX:
            return _error(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
                {},
            )
        all_or_none = bool(body.get("allOrNone", False))
        client = _client(request.headers.get("Sforce-Call-Options", ""))
        with self._lock:
            self._write_calls += 1
            self.write_headers.append(request.headers.get("Sforce-Call-Options", ""))
            seen: set[str] = set()
            results: list[dict[str, Any]] = []
            staged: list[tuple[str, str, dict[str, Any]]] = []
            for item in records:
                result, change = self._check_update(item, seen)
                results.append(result)
                if change is not None:
                    staged.append(change)
            failed = any(not r["success"] for r in results)
            if all_or_none and failed:
                for r in results:
                    if r["success"]:
                        r.update(
                            success=False,
                            errors=[
                                {
                                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                    "message": "Record rolled back because not all records "
                                    "were valid and the request was using AllOrNone header",
                                    "fields": [],
                                }
                            ],
                        )
            else:
                for sobject, rid, values in staged:
                    self.update(sobject, rid, values, client=client)
        return web.json_response(results)

    def _check_update(
        self, item: Any, seen: set[str]
    ) -> tuple[dict[str, Any], tuple[str, str, dict[str, Any]] | None]:
        def fail(
            rid: Any, code: str, message: str, fields: Sequence[str] = ()
        ) -> tuple[dict[str, Any], None]:
            return {
                "id": rid,
                "success": False,
                "errors": [{"statusCode": code, "message": message, "fields": list(fields)}],
            }, None

        if not isinstance(item, dict):
            return fail(None, "INVALID_FIELD", "a record must be an object")
        rid = item.get("id") or item.get("Id")
        sobject = (item.get("attributes") or {}).get("type")
        if not sobject or sobject not in self.schema:
            return fail(rid, "INVALID_TYPE", f"sObject type '{sobject}' is not supported")
        if not isinstance(rid, str) or len(rid) not in (15, 18):
            return fail(rid, "MALFORMED_ID", f"malformed id {rid}")
        if rid in seen:
            return fail(rid, "DUPLICATE_VALUE", "duplicate id in list: " + rid)
        seen.add(rid)
        record = self.records[sobject].get(rid)
        if record is None:
            return fail(rid, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        if record["IsDeleted"]:
            return fail(rid, "ENTITY_IS_DELETED", "entity is deleted")
        values = {k: v for k, v in item.items() if k not in ("attributes", "id", "Id")}
        schema = self.schema[sobject]
        unknown = [k for k in values if k not in schema]
        if unknown:
            return fail(
                rid,
                "INVALID_FIELD",
                f"No such column '{unknown[0]}' on sobject of type {sobject}",
                unknown,
            )
        readonly = [k for k in values if k in _READ_ONLY]
        if readonly:
            return fail(
                rid,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(readonly)}",
                readonly,
            )
        if self._locks.get(rid, 0) > 0:
            self._locks[rid] -= 1
            return fail(
                rid,
                "UNABLE_TO_LOCK_ROW",
                f"unable to obtain exclusive access to this record or 1 records: {rid}",
            )
        return {"id": rid, "success": True, "errors": []}, (sobject, rid, values)

    async def _create_record(self, request: web.Request) -> web.Response:
        """``POST sobjects/{type}``: create one record (used for FieldPermissions)."""
        sobject = request.match_info["sobject"]
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "JSON_PARSER_ERROR", "request body is not JSON", {})
        with self._lock:
            self._write_calls += 1
            self.write_headers.append(request.headers.get("Sforce-Call-Options", ""))
            schema = self.schema.get(sobject)
            if schema is None:
                return _error(404, "NOT_FOUND", "The requested resource does not exist", {})
            if not isinstance(body, dict):
                return _error(400, "INVALID_FIELD", "a record must be an object", {})
            unknown = [k for k in body if k not in schema or k in _READ_ONLY]
            if unknown:
                return _error(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{unknown[0]}' on sobject of type {sobject}",
                    {},
                )
            if sobject == "FieldPermissions":
                obj, _, name = str(body.get("Field") or "").partition(".")
                if self.schema.get(obj, {}).get(name) is None:
                    return _error(
                        400,
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        f"Field: bad value for restricted picklist field: {body.get('Field')}",
                        {},
                    )
                for row in self.records["FieldPermissions"].values():
                    if (row["ParentId"], row["Field"]) == (body.get("ParentId"), body["Field"]):
                        return _error(
                            400,
                            "DUPLICATE_VALUE",
                            f"duplicate value found: <unknown> duplicates value on record with "
                            f"id: {row['Id']}",
                            {},
                        )
            rid = self.create(sobject, body)
        return web.json_response({"id": rid, "success": True, "errors": []}, status=201)


def _client(call_options: str) -> str | None:
    for part in call_options.split(","):
        key, _, value = part.strip().partition("=")
        if key == "client" and value:
            return value
    return None
