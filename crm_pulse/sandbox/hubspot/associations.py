"""``/crm/v4``: associations, in batches and one record's page by page."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .answers import _associated, _batch_times, _error, _next_page, _too_many
from .model import ASSOCIATIONS_BATCH_MAX, ASSOCIATIONS_PAGE_MAX, OBJECT_TYPE_IDS
from .state import _State


class _Associations(_State):
    """The v4 associations API."""

    async def _associations(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        to_raw = request.match_info["to"]
        to_type = OBJECT_TYPE_IDS.get(to_raw, to_raw)
        body = await request.json()
        inputs = body.get("inputs") or []
        if len(inputs) > ASSOCIATIONS_BATCH_MAX:
            return _too_many(len(inputs), ASSOCIATIONS_BATCH_MAX)
        results, none = [], []
        with self._lock:
            for item in inputs:
                rid = str(item.get("id"))
                targets = sorted(self.associations.get((object_type, rid, to_type), set()), key=int)
                if not targets:
                    none.append(rid)
                    continue
                result: dict[str, Any] = {
                    "from": {"id": rid},
                    "to": [_associated(t) for t in targets[:ASSOCIATIONS_PAGE_MAX]],
                }
                if len(targets) > ASSOCIATIONS_PAGE_MAX:
                    result["paging"] = _next_page(ASSOCIATIONS_PAGE_MAX)
                results.append(result)
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results, **_batch_times()}
        if none:
            answer["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    "message": f"No {to_type} is associated with {object_type} {rid}.",
                    "context": {"fromObjectId": [rid]},
                    "links": {},
                    "errors": [],
                }
                for rid in none
            ]
            answer["numErrors"] = len(none)
            return web.json_response(answer, status=207)
        return web.json_response(answer)

    async def _associations_page(self, request: web.Request) -> web.Response:
        """``GET /crm/v4/objects/{type}/{id}/associations/{to}``: one record's associations,
        at most 500 per page, ``paging.next.after`` for the rest."""
        object_type = self._type(request)
        to_raw = request.match_info["to"]
        to_type = OBJECT_TYPE_IDS.get(to_raw, to_raw)
        rid = request.match_info["id"]
        try:
            after = int(request.query.get("after") or 0)
            limit = min(int(request.query.get("limit") or ASSOCIATIONS_PAGE_MAX), 500)
        except ValueError:
            return _error(400, "VALIDATION_ERROR", "after and limit must be integers")
        with self._lock:
            targets = sorted(self.associations.get((object_type, rid, to_type), set()), key=int)
        answer: dict[str, Any] = {
            "results": [_associated(t) for t in targets[after : after + limit]]
        }
        if after + limit < len(targets):
            answer["paging"] = _next_page(after + limit)
        return web.json_response(answer)
