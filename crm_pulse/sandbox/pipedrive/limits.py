"""The gate in front of every route: token auth, the burst and daily-budget rate limits
(429), forced 429s and injected faults."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .model import _COST
from .state import _Account


class _Limits(_Account):
    """Auth, rate limits and faults, as one aiohttp middleware."""

    def _cost(self, request: web.Request) -> int:
        if request.method == "GET":
            return _COST["GET_one"] if request.match_info.get("id") else _COST["GET_list"]
        return _COST.get(request.method, 5)

    def _limit_headers(self, now: float) -> dict[str, str]:
        self._requests = [t for t in self._requests if t > now - 2]
        return {
            "x-ratelimit-limit": str(self.burst),
            "x-ratelimit-remaining": str(max(0, self.burst - len(self._requests))),
            "x-ratelimit-reset": "2",
            "x-daily-requests-left": str(self.daily_left),
        }

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if (
            request.headers.get("x-api-token") != self.token
            and request.query.get("api_token") != self.token
        ):
            return web.json_response(
                {"success": False, "error": "unauthorized access", "errorCode": 401}, status=401
            )
        with self._lock:
            self.calls.append((request.method, request.path))
            now = self.clock()
            headers = self._limit_headers(now)
            cost = self._cost(request)
            forced = self._forced.pop(0) if self._forced else None
            fault = self.faults.pop(0) if self.faults else None
            over_daily = self.tokens_spent + cost > self.daily_budget
            over_burst = len(self._requests) >= self.burst
            if forced is None and not over_daily and not over_burst:
                self._requests.append(now)
                self.tokens_spent += cost
                headers = self._limit_headers(now)
        if over_daily and forced is None:
            return web.json_response(
                {
                    "success": False,
                    "error": "Daily API token budget exceeded",
                    "errorCode": 429,
                },
                status=429,
                headers=headers,
            )
        if forced is not None or over_burst:
            wait = forced if forced is not None else max(0.001, min(self._requests) + 2 - now)
            return web.json_response(
                {"success": False, "error": "Rate limit exceeded", "errorCode": 429},
                status=429,
                headers={
                    **headers,
                    "Retry-After": f"{max(1, int(wait + 0.999)) if forced is None else wait:g}",
                    "x-ratelimit-remaining": "0",
                },
            )
        if fault is not None:
            status, delay = fault
            if delay:
                await asyncio.sleep(delay)
            if status:
                return web.json_response(
                    {"success": False, "error": "Internal server error", "errorCode": status},
                    status=status,
                    headers=headers,
                )
        response: web.StreamResponse = await handler(request)
        response.headers.update(headers)
        return response
