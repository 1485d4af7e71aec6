"""Sessions: the bearer check, the daily API limit and the failures on demand every request
passes, the OAuth token endpoint, and the session's user."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from .model import _error
from .soql import SoqlError
from .state import _Org


class _Session(_Org):
    """The gate in front of every route, the token endpoint, ``chatter/users/me``."""

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/services/oauth2/token":
            response: web.StreamResponse = await handler(request)
            return response
        with self._lock:
            self.requests_seen.append((request.method, request.path))
            auth = request.headers.get("Authorization", "")
            if auth != f"Bearer {self.session_id}":
                return _error(401, "INVALID_SESSION_ID", "Session expired or invalid", {})
            if self._fail[0] > 0:
                self._fail = (self._fail[0] - 1, self._fail[1])
                return _error(
                    self._fail[1], "SERVER_UNAVAILABLE", "Server is unavailable", self._limits()
                )
            if self._refuse > 0 or self.api_used >= self.daily_limit:
                self._refuse = max(0, self._refuse - 1)
                return _error(
                    403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", self._limits()
                )
            self.api_used += 1
            stall = self._stall
            if stall[0] > 0:
                self._stall = (stall[0] - 1, stall[1])
        if stall[0] > 0:
            await asyncio.sleep(stall[1])
        try:
            response = await handler(request)
        except SoqlError as exc:
            return _error(400, exc.code, exc.message, self._limits())
        response.headers["Sforce-Limit-Info"] = self._limits()["Sforce-Limit-Info"]
        return response

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        ok = (
            form.get("grant_type") == "client_credentials"
            and self.client_id is not None
            and form.get("client_id") == self.client_id
            and form.get("client_secret") == self.client_secret
        )
        if not ok:
            return web.json_response(
                {"error": "invalid_client", "error_description": "invalid client credentials"},
                status=400,
            )
        host = request.headers.get("Host", "127.0.0.1")
        return web.json_response(
            {
                "access_token": self.session_id,
                "instance_url": f"https://{host}",
                "token_type": "Bearer",
                "issued_at": str(self.now_ms()),
            }
        )

    async def _me(self, request: web.Request) -> web.Response:
        """``GET chatter/users/me``: the session's user (part of Chatter's user detail)."""
        if not self.chatter:
            return _error(403, "FUNCTIONALITY_NOT_ENABLED", "Chatter is not enabled", {})
        return web.json_response(
            {"id": self.api_user_id, "type": "User", "username": "api@example.test"}
        )
