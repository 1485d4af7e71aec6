"""A small typed async client for Pipedrive's API v2 (v1 only for ``/v1/users/me``).

Pipedrive limits a token to a number of **requests** in a rolling two-second burst window (its
plan's ``x-ratelimit-limit``) and a company to a daily budget of **tokens**, which each call
spends by its cost (v2: list 10, get 1, POST/PATCH 5, search 20). The client counts its
requests in the window and waits rather than exceed it, stops at its share of the daily budget
(from ``x-daily-requests-left`` when Pipedrive sends it), and on a 429 waits for Retry-After
(reads) or raises RateLimited (writes: the outbox retries them). Field definitions are read
from API v2 (``/api/v2/<entity>Fields``), every cursor page of them. Errors are translated in
:mod:`.errors`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from ...errors import CrmPulseError, RateLimited, RetriableError, SkippableError
from ...retry import Backoff, retrying
from .errors import translate, translate_status
from .settings import PipedriveSettings

__all__ = ["COSTS", "PipedriveClient", "TokenBudget"]

COSTS = {"list": 10, "get": 1, "write": 5, "search": 20}


def _segment(value: object) -> str:
    """One URL path segment, percent-quoted: an id can never reach another endpoint."""
    return quote(str(value), safe="")


class TokenBudget:
    """Rolling two-second burst window of requests, plus a daily share of tokens.

    A request counts in the window from when it starts until ``window`` seconds after its answer
    came (:meth:`answered`): Pipedrive counts a request when it arrives, which is no later than
    its answer, so a slot freed this way is free at Pipedrive too, however late concurrent
    requests reach it or in whatever order (counting from the start only would let a request
    that waited in our event loop land in the same window as a later one).
    """

    def __init__(
        self,
        burst: int = 20,
        window: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        margin: float = 0.0,
    ) -> None:
        self.burst = burst
        """Requests allowed per ``window`` (the smallest plan's until Pipedrive says more)."""
        self.window = window
        self.margin = margin
        """Seconds added to the window: Pipedrive counts arrivals, which come a little after
        our starts and, for concurrent requests, not in the order they started."""
        self.clock = clock
        self.spent: list[list[float]] = []
        """[time, token cost] of each request still inside the window (time: its start, then
        its answer)."""
        self.tokens = 0
        """Tokens spent by this client so far."""
        self.daily_left: int | None = None
        self.daily_floor = 0
        self.daily_seen_at = float("-inf")
        """When ``daily_left`` was last read from an answer."""
        self.recheck = 3600.0
        """Seconds after which a used-up share is asked again (the budget resets daily)."""

    def wait_for(self, cost: int = 1) -> float:
        """Seconds to wait before one more request (0 if now is fine). ``cost`` (tokens)
        counts against the daily budget only: the burst limit counts requests."""
        now = self.clock()
        span = self.window + self.margin
        self.spent = [entry for entry in self.spent if entry[0] > now - span]
        if len(self.spent) < self.burst or not self.spent:
            return 0.0
        # the request may go once enough of the oldest ones have left the window
        times = sorted(entry[0] for entry in self.spent)
        return max(0.0, times[len(times) - self.burst] + span - now)

    def spend(self, cost: int) -> list[float]:
        """Count a request starting now; returns its entry, for :meth:`answered`."""
        entry = [self.clock(), float(cost)]
        self.spent.append(entry)
        self.tokens += cost
        return entry

    def answered(self, entry: list[float]) -> None:
        """The request's answer came: it counts in the window from now."""
        entry[0] = max(entry[0], self.clock())

    def exhausted(self) -> bool:
        """The daily share is used up (as the last answer said, within ``recheck``)."""
        if self.daily_left is None or self.daily_left > self.daily_floor:
            return False
        return self.clock() - self.daily_seen_at < self.recheck


_SINGULAR = {
    "deals": "deal",
    "persons": "person",
    "organizations": "organization",
    "activities": "activity",
}


class PipedriveClient:
    def __init__(
        self,
        settings: PipedriveSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_wait: float = 30.0,
        attempts: int = 4,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        verify: Any = str(settings.ca_cert) if settings.ca_cert is not None else True
        self.http = httpx.AsyncClient(
            base_url=str(settings.base_url).rstrip("/"),
            headers={
                "x-api-token": settings.api_token.get_secret_value(),
                "Accept": "application/json",
            },
            timeout=settings.timeout,
            verify=verify,
            transport=transport,
            trust_env=False,
        )
        self.budget = TokenBudget()
        self.budget_share = settings.budget_share
        self.backoff = Backoff(initial=1.0, maximum=30.0, attempts=attempts, max_wait=max_wait)
        """Retries of calls (:mod:`crm_pulse.retry`): backoff with jitter, Retry-After or
        ``x-ratelimit-reset`` honoured up to ``max_wait``."""
        self.sleep = sleep
        self._turn = asyncio.Lock()
        self.calls = 0

    def _headers(self, response: httpx.Response) -> None:
        limit = response.headers.get("x-ratelimit-limit")
        if limit is not None and limit.isdigit() and int(limit) > 0:
            self.budget.burst = int(limit)  # the account's real burst size
        left = response.headers.get("x-daily-requests-left")
        if left is not None and left.isdigit():
            self.budget.daily_left = int(left)
            self.budget.daily_seen_at = self.budget.clock()
            if self.budget.daily_floor == 0:
                self.budget.daily_floor = int(int(left) * (1 - self.budget_share))

    async def request(
        self,
        method: str,
        path: str,
        kind: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        retry: bool = True,
    ) -> dict[str, Any]:
        what = f"{method} {path.split('?')[0]}"
        cost = COSTS[kind]

        async def once() -> dict[str, Any]:
            if self.budget.exhausted():
                raise RateLimited(f"Pipedrive daily token share used up before {what}", 3600.0)
            # wait until the rolling window has room for one more request, in turn (concurrent
            # requests queue here: one waits at a time, the others behind it); look again after
            # each wait, unbounded while the clock moves (a clock that does not move cannot
            # hang us)
            async with self._turn:
                still = 0
                while (wait := self.budget.wait_for(cost)) > 0 and still < 64:
                    before = self.budget.clock()
                    await self.sleep(wait)
                    still = still + 1 if self.budget.clock() <= before else 0
                entry = self.budget.spend(cost)
            self.calls += 1
            try:
                response = await self.http.request(method, path, params=params, json=json)
                self._headers(response)
                error = translate_status(response, what)
            except Exception as exc:  # translated: the one place for vendor errors
                error = translate(exc, what)
                response = None
            finally:
                self.budget.answered(entry)
            if error is None and response is not None:
                data = response.json()
                return dict(data) if isinstance(data, dict) else {"data": data}
            assert error is not None
            raise error

        def worth_retrying(error: CrmPulseError) -> bool:
            return retry and isinstance(error, RetriableError)

        return await retrying(
            f"Pipedrive {what}", once, self.backoff, retry_on=worth_retrying, sleep=self.sleep
        )

    async def pages(
        self, path: str, params: Mapping[str, Any]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of a v2 list endpoint (cursor paging, up to 500 per page)."""
        cursor: str | None = None
        while True:
            query = {**params, "limit": 500}
            if cursor:
                query["cursor"] = cursor
            data = await self.request("GET", path, "list", params=query)
            yield list(data.get("data") or [])
            cursor = (data.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                return

    async def org_deal_history(self, org_id: str) -> tuple[str | None, str | None]:
        """(earliest won_time, latest update_time) over the organization's deals, archived and
        deleted ones included: when it became a customer, and a version that moves when that
        can change. Archived deals still count, so a first won deal archived later still makes
        the organization a customer since then."""
        first_won: str | None = None
        latest: str | None = None
        lists = (
            ("/api/v2/deals", {"org_id": org_id, "status": "open,won,lost,deleted"}),
            ("/api/v2/deals/archived", {"org_id": org_id}),
        )
        for path, params in lists:
            async for deals in self.pages(path, params):
                for deal in deals:
                    updated = deal.get("update_time")
                    if updated and (latest is None or str(updated) > latest):
                        latest = str(updated)
                    won = deal.get("won_time")
                    if (
                        deal.get("status") == "won"
                        and won
                        and (first_won is None or str(won) < first_won)
                    ):
                        first_won = str(won)
        return first_won, latest

    async def get(self, entity: str, rid: str) -> dict[str, Any] | None:
        """One record, or None when Pipedrive says it does not exist (404)."""
        try:
            data = await self.request("GET", f"/api/v2/{_segment(entity)}/{_segment(rid)}", "get")
        except SkippableError as exc:
            if " 404 " in f" {exc} ":
                return None
            raise
        item = data.get("data")
        return dict(item) if isinstance(item, dict) else None

    async def patch(self, entity: str, rid: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request(
            "PATCH", f"/api/v2/{_segment(entity)}/{_segment(rid)}", "write", json=body, retry=False
        )

    async def fields(self, entity: str, *, retry: bool = True) -> list[dict[str, Any]]:
        """Every field definition of an entity (``GET /api/v2/<entity>Fields``, all cursor
        pages), as ``{key, name, field_type, options}``: ``key`` is the field code (a
        40-character hash for custom fields)."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        path = f"/api/v2/{_SINGULAR[entity]}Fields"
        while True:
            query: dict[str, Any] = {"limit": 500}
            if cursor:
                query["cursor"] = cursor
            data = await self.request("GET", path, "list", params=query, retry=retry)
            for f in data.get("data") or []:
                out.append(
                    {
                        "key": f.get("field_code"),
                        "name": f.get("field_name"),
                        "field_type": f.get("field_type"),
                        "options": f.get("options"),
                    }
                )
            cursor = (data.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                return out

    async def create_field(self, entity: str, name: str, field_type: str) -> dict[str, Any]:
        """Create a custom field (``POST /api/v2/<entity>Fields``); returns ``{key, name,
        field_type}``."""
        if entity not in ("deals", "persons", "organizations"):
            raise SkippableError(f"Pipedrive {entity} take no custom fields from crm-pulse")
        data = await self.request(
            "POST",
            f"/api/v2/{_SINGULAR[entity]}Fields",
            "write",
            json={"field_name": name, "field_type": field_type},
        )
        created = dict(data.get("data") or {})
        return {
            "key": created.get("field_code"),
            "name": created.get("field_name"),
            "field_type": created.get("field_type"),
        }

    async def default_currency(self) -> str | None:
        """The company's default currency (``GET /v1/users/me``: API v2 has no equivalent)."""
        data = await self.request("GET", "/v1/users/me", "get")
        currency = (data.get("data") or {}).get("default_currency")
        return str(currency) if currency else None

    async def users(self) -> list[dict[str, Any]]:
        """Every user of the company (``GET /v1/users``: one answer, no paging; API v2 has no
        users list)."""
        data = await self.request("GET", "/v1/users", "list")
        return [dict(u) for u in data.get("data") or [] if isinstance(u, dict)]

    async def aclose(self) -> None:
        await self.http.aclose()
