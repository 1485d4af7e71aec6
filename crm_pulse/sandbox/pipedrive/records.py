"""``/api/v2/{entity}``: records listed, read and updated (custom fields typed as API v2 wants)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .answers import _bad, _cursor, _limit, _not_found, _offset
from .model import _ENTITIES, DELETED_VISIBLE_DAYS, _iso, _public, _seconds
from .state import _Account


class _Records(_Account):
    """The records API (API v2)."""

    def _entity(self, request: web.Request) -> str:
        entity = request.match_info.get("entity", "deals")
        if entity not in _ENTITIES:
            raise web.HTTPNotFound(
                text=json.dumps({"success": False, "error": "Unknown method ."}),
                content_type="application/json",
            )
        return entity

    def _page(self, request: web.Request, rows: list[dict[str, Any]]) -> web.Response:
        limit = _limit(request)
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
        offset = _offset(request)
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
