"""``GET /crm/v3/owners``: the portal's users as owners."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .answers import _error, _next_page
from .model import OWNERS_PAGE_MAX
from .state import _State


class _Owners(_State):
    """The owners API (read-only)."""

    async def _owners(self, request: web.Request) -> web.Response:
        """``GET /crm/v3/owners``: ``archived=true`` lists only the archived owners; ``email``
        filters; ``after``/``limit`` page (by id)."""
        if "crm.objects.owners.read" in self.missing_scopes:
            return _error(
                403,
                "MISSING_SCOPES",
                "This app hasn't been granted all required scopes to make this call.",
            )
        archived = request.query.get("archived", "false").lower() == "true"
        raw_limit = request.query.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= OWNERS_PAGE_MAX:
            return _error(400, "VALIDATION_ERROR", f"limit must be 1..{OWNERS_PAGE_MAX}")
        limit = int(raw_limit)
        after_text = request.query.get("after") or "0"
        if not after_text.isdigit():
            return _error(400, "VALIDATION_ERROR", "after must be a paging token")
        after = int(after_text)
        email = request.query.get("email")
        with self._lock:
            rows = sorted(
                (
                    dict(o)
                    for o in self.owners.values()
                    if o["archived"] == archived and (email is None or o["email"] == email)
                ),
                key=lambda o: (len(o["id"]), o["id"]),
            )
        answer: dict[str, Any] = {"results": rows[after : after + limit]}
        if after + limit < len(rows):
            answer["paging"] = _next_page(after + limit)
        return web.json_response(answer)
