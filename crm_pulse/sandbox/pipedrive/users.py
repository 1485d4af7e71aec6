"""``/v1/users``: the company's users, and the token's own user."""

from __future__ import annotations

from aiohttp import web

from .state import _Account


class _Users(_Account):
    """The users API (v1; API v2 has none)."""

    async def _me(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "success": True,
                "data": {
                    "id": 1,
                    "name": "crm-pulse",
                    "company_id": 1,
                    "default_currency": self.currency,
                },
            }
        )

    async def _users(self, request: web.Request) -> web.Response:
        """``GET /v1/users``: every user of the company, in one answer (no paging)."""
        if "users:read" in self.missing_scopes:
            return web.json_response(
                {"success": False, "error": "Scope and URL mismatch", "errorCode": 403},
                status=403,
            )
        with self._lock:
            data = [dict(u) for _, u in sorted(self.users.items())]
        return web.json_response({"success": True, "data": data})
