"""The accounts server: ``POST /oauth/v2/token`` (refresh-token grant; refusals are HTTP 200
with an ``error`` key, as Zoho's are)."""

from __future__ import annotations

import secrets

from aiohttp import web

from .state import _Org


class _OAuth(_Org):
    """Access tokens from the refresh token."""

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        with self._lock:
            self.token_requests += 1
        if request.query.get("refresh_token") or request.query.get("client_secret"):
            # we only ever send credentials in the body; a query string would reach logs
            return web.json_response({"error": "credentials_in_query_string"}, status=400)
        if form.get("grant_type") != "refresh_token":
            return web.json_response({"error": "unsupported_grant_type"})
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return web.json_response({"error": "invalid_client"})
        if form.get("refresh_token") != self.refresh_token:
            return web.json_response({"error": "invalid_code"})
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        with self._lock:
            self.tokens[token] = self.clock() + self.token_lifetime
        return web.json_response(
            {
                "access_token": token,
                "scope": "ZohoCRM.modules.ALL ZohoCRM.settings.ALL ZohoCRM.notifications.ALL"
                + ("" if "ZohoCRM.users.READ" in self.missing_scopes else " ZohoCRM.users.READ"),
                "api_domain": f"{request.scheme}://{request.host}",
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
            }
        )
