"""Field definitions: ``/api/v2/{entity}Fields`` (cursor pages) and ``/v1/{entity}Fields``
(``start``/``limit`` pages), listed and created."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .answers import _bad, _cursor, _limit, _offset
from .model import _FIELD_TYPES, _SINGULAR, FIELDS_PAGE_DEFAULT
from .state import _Account


class _Fields(_Account):
    """The field definitions APIs (v2 and v1)."""

    def _singular_entity(self, request: web.Request) -> str:
        singular = request.match_info["singular"]
        entity = {v: k for k, v in _SINGULAR.items()}.get(singular)
        if entity is None:
            raise web.HTTPNotFound()
        return entity

    async def _fields_v2(self, request: web.Request) -> web.Response:
        """``GET /api/v2/<entity>Fields``: cursor pages (``limit`` 100 by default, 500 at most)."""
        entity = self._singular_entity(request)
        limit = _limit(request, FIELDS_PAGE_DEFAULT)
        offset = _offset(request)
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
