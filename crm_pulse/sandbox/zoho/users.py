"""``GET users``: the user the token acts as (``type=CurrentUser``) or everyone."""

from __future__ import annotations

from aiohttp import web

from .model import API_USER, REP, _error
from .state import _Org


class _Users(_Org):
    """The users API."""

    async def _users(self, request: web.Request) -> web.Response:
        """``GET users?type=CurrentUser``: the user the token acts as (other types: everyone)."""
        if "ZohoCRM.users.READ" in self.missing_scopes:
            return _error(401, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL")
        users = [API_USER] if request.query.get("type") == "CurrentUser" else [REP, API_USER]
        rows = [{"id": u["id"], "full_name": u["name"], "email": u["email"]} for u in users]
        return web.json_response({"users": rows})
