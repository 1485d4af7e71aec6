"""Zoho OAuth 2.0 for a self client: access tokens from the refresh token, kept in memory only.

``POST {accounts server}/oauth/v2/token`` with ``grant_type=refresh_token`` (form body, never
the query string, so no credential reaches a log line) answers ``{access_token, expires_in,
api_domain, token_type}``; access tokens live an hour. :class:`TokenSource` refreshes
``margin`` seconds before expiry and, when the API says ``INVALID_TOKEN`` anyway, once more on
demand (:meth:`TokenSource.invalidate`). Refreshes are serialized: concurrent callers wait for
one refresh. Zoho's accounts server reports some refusals with HTTP 200 and an ``error`` key;
both kinds stop the connector with a message naming the accounts server, never a credential.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from ...errors import FatalError, RetriableError
from .errors import translate

__all__ = ["TokenSource"]


class TokenSource:
    def __init__(
        self,
        http: httpx.AsyncClient,
        accounts_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        *,
        margin: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._url = f"{accounts_url}/oauth/v2/token"
        self._form = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
        }
        self.margin = margin
        self.clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"TokenSource({self._url!r}, refreshes={self.refreshes})"

    async def token(self) -> str:
        """A valid access token, refreshed when it is missing or about to expire."""
        if self._token is not None and self.clock() < self._expires_at - self.margin:
            return self._token
        async with self._lock:
            if self._token is None or self.clock() >= self._expires_at - self.margin:
                await self._refresh()
            assert self._token is not None
            return self._token

    async def invalidate(self, used: str) -> None:
        """The API refused ``used`` (INVALID_TOKEN): forget it unless another caller already
        replaced it, so the next :meth:`token` refreshes."""
        async with self._lock:
            if self._token == used:
                self._token = None

    async def _refresh(self) -> None:
        what = "the access-token refresh"
        try:
            response = await self._http.post(self._url, data=self._form)
        except Exception as exc:
            raise translate(exc, what) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise RetriableError(f"Zoho accounts server answered {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise RetriableError("Zoho accounts server sent an unreadable answer") from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if response.status_code >= 400 or not token:
            error = body.get("error") if isinstance(body, dict) else None
            raise FatalError(
                f"Zoho accounts server {self._url} refused the refresh token "
                f"({error or response.status_code}): check client_id, client_secret, "
                "refresh_token and data_centre"
            )
        try:
            lifetime = float(body.get("expires_in") or 3600)
        except (TypeError, ValueError):
            lifetime = 3600.0
        self._token = str(token)
        self._expires_at = self.clock() + lifetime
        self.refreshes += 1
