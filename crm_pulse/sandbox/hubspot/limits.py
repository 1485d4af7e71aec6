"""Rate limits, forced 429s and injected failures, applied by one aiohttp middleware in front
of every route (with bearer-token auth and the ``X-HubSpot-RateLimit-*`` headers)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from .answers import _error
from .state import _State


class _Limits(_State):
    """The gate every request passes: auth, rate limits, injected faults."""

    def rate_limit(self, requests: int, retry_after: float) -> None:
        """Answer the next ``requests`` API calls with 429 (``TEN_SECONDLY_ROLLING``) and this
        Retry-After."""
        with self._lock:
            self._forced_429 = [retry_after] * requests

    def exhaust_daily(self) -> None:
        """Use up the portal's daily limit: every call answers 429 ``policyName: DAILY``
        (no Retry-After) until :meth:`reset_daily` (HubSpot: the portal's midnight)."""
        with self._lock:
            self._daily = self.daily_max

    def reset_daily(self) -> None:
        with self._lock:
            self._daily = 0

    def fail(self, requests: int, status: int = 502, *, delay: float = 0.0) -> None:
        """The next ``requests`` calls answer ``status`` (a 5xx with HubSpot's error body)
        after ``delay`` seconds; ``status=0`` only delays (a slow answer: client timeouts)."""
        with self._lock:
            self.faults = [(status, delay)] * requests

    def stall(self, requests: int, seconds: float) -> None:
        """The next ``requests`` calls reach HubSpot ``seconds`` late: they are counted in its
        rate window on arrival, after the delay (what a loaded client machine does)."""
        with self._lock:
            self.stalls = [seconds] * requests

    def _limit_headers(self, now: float) -> dict[str, str]:
        interval = self.rate_interval_ms / 1000
        self._window = [t for t in self._window if t > now - interval]
        return {
            "X-HubSpot-RateLimit-Max": str(self.rate_max),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.rate_max - len(self._window))),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.rate_interval_ms),
            "X-HubSpot-RateLimit-Daily": str(self.daily_max),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_max - self._daily)),
        }

    def _over_limit(self, request: web.Request, now: float) -> float | None:
        """Seconds to wait if this request breaks a rate limit (it is then not counted)."""
        if self.rate_max and len(self._window) >= self.rate_max:
            oldest = min(self._window)
            return max(0.001, oldest + self.rate_interval_ms / 1000 - now)
        if self.search_per_second and request.path.endswith("/search"):
            self._search_window = [t for t in self._search_window if t > now - 1.0]
            if len(self._search_window) >= self.search_per_second:
                return max(0.001, min(self._search_window) + 1.0 - now)
            self._search_window.append(now)
            self.searches_counted.append(now)
        return None

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.")
        with self._lock:
            stall = self.stalls.pop(0) if self.stalls else 0.0
        if stall:
            await asyncio.sleep(stall)
        with self._lock:
            now = self.clock()
            self.calls.append((request.method, request.path))
            peer = request.transport.get_extra_info("peername") if request.transport else None
            if peer:
                self.connections.add(tuple(peer[:2]))
            if request.path.endswith("/batch/update"):
                self._write_calls += 1
            headers = self._limit_headers(now)
            fault = self.faults.pop(0) if self.faults else None
            forced = self._forced_429.pop(0) if self._forced_429 else None
            daily = self.daily_max and self._daily >= self.daily_max
            wait = None if forced is not None or daily else self._over_limit(request, now)
            if forced is None and wait is None and not daily:
                self._window.append(now)
                self._daily += 1
                headers = self._limit_headers(now)
        if daily:
            # the portal's daily limit is used up until its midnight: no Retry-After
            return _rate_limited("DAILY", headers)
        if wait is not None:
            self.throttled += 1
            policy = "SECONDLY" if request.path.endswith("/search") else "TEN_SECONDLY_ROLLING"
            return _rate_limited(policy, {**headers, "Retry-After": f"{max(1, int(wait + 0.999))}"})
        if forced is not None:
            return _rate_limited(
                "TEN_SECONDLY_ROLLING",
                {**headers, "Retry-After": f"{forced:g}", "X-HubSpot-RateLimit-Remaining": "0"},
            )
        if fault is not None:
            status, delay = fault
            if delay:
                await asyncio.sleep(delay)
            if status:
                return _error(status, "INTERNAL_ERROR", "internal error", headers)
        response: web.StreamResponse = await handler(request)
        response.headers.update(headers)
        self.statuses.append(response.status)
        return response


def _rate_limited(policy: str, headers: Mapping[str, str]) -> web.Response:
    """HubSpot's 429: ``errorType: RATE_LIMIT`` and the ``policyName`` of the limit hit."""
    period = {"DAILY": "daily", "SECONDLY": "secondly"}.get(policy, "ten-secondly rolling")
    return web.json_response(
        {
            "status": "error",
            "message": f"You have reached your {period} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "requestId": str(uuid.uuid4()),
        },
        status=429,
        headers=headers,
    )
