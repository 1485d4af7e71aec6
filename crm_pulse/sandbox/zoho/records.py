"""Get Records (``fields``, ``sort_by``, ``page`` then ``page_token``, ``If-Modified-Since``,
``ids``) and Get Deleted Records."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from .model import _error
from .state import _Org


class _Records(_Org):
    """The records read APIs."""

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
