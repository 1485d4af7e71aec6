"""The gate every API call passes: access token, injected faults, forced 429s, API credits per
24 hours and the concurrency limit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .model import _error
from .state import _Org


class _Limits(_Org):
    """The middleware in front of every call."""

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        with self._lock:
            self.calls.append((request.method, request.path))
        if request.path.startswith("/oauth/"):
            response: web.StreamResponse = await handler(request)
            return response
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        now = self.clock()
        with self._lock:
            valid = scheme == "Zoho-oauthtoken" and self.tokens.get(token, 0.0) > now
            limited = bool(self._forced)
            forced = self._forced.pop(0) if self._forced else None
            used = sum(c for t, c in self.spent if t > now - 86400)
        if not valid:
            return _error(401, "INVALID_TOKEN", "invalid oauth token")
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            status, delay = fault
            if delay:
                await asyncio.sleep(delay)
            if status:
                return _error(status, "INTERNAL_ERROR", "Internal Server Error")
        if limited:
            headers = {"Retry-After": f"{forced:g}"} if forced is not None else {}
            response = _error(429, "TOO_MANY_REQUESTS", "too many requests")
            response.headers.update(headers)
            return response
        if used >= self.daily_credits:
            return _error(429, "TOO_MANY_REQUESTS", "API credits for the last 24 hours are used up")
        with self._lock:
            if self.concurrency is not None and self.in_flight >= self.concurrency:
                self.concurrency_refusals += 1
                return _error(429, "TOO_MANY_REQUESTS", "concurrency limit exceeded")
            self.in_flight += 1
            self.spent.append((now, 1))
        try:
            response = await handler(request)
        finally:
            with self._lock:
                self.in_flight -= 1
        return response
