"""A small typed async client for Zoho CRM's REST API v8 (httpx; see docs/connect-zoho.md for
why not the vendor SDK).

Every call carries ``Authorization: Zoho-oauthtoken <access token>`` from :class:`.TokenSource`
(refreshed before expiry, and once more on 401 INVALID_TOKEN). Calls are limited to
``concurrency`` at a time and charged against :class:`CreditBudget`, a rolling 24-hour window
holding this connector to ``credit_share`` of the org's ``daily_credits``; past it the call
raises RateLimited with the wait until credits free up. Transient failures and 429s are
retried by one backoff policy (reads); writes get RateLimited at once so the write-back outbox
waits instead. Retries follow the one policy of :mod:`crm_pulse.retry`. Ids that reach a URL
are checked to be Zoho's numeric ids and quoted.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from ...errors import (
    CrmPulseError,
    DataError,
    FatalError,
    RateLimited,
    RetriableError,
    SkippableError,
)
from ...retry import Backoff, retrying
from .errors import TokenExpired, ZohoError, translate, translate_status
from .oauth import TokenSource
from .settings import ZohoSettings

log = logging.getLogger("crm_pulse.zoho")

__all__ = ["PER_PAGE", "CreditBudget", "ZohoClient", "check_id", "http_time"]

PER_PAGE = 200
"""Records per page of Get Records (Zoho's maximum)."""
UPDATE_BATCH = 100
"""Records per Update Records call (Zoho's maximum)."""
_ID = re.compile(r"^[0-9]{1,19}$")
DAY = 24 * 3600.0
PAUSE = 60.0
"""Seconds a caller pauses after 429s that named no wait outlasted the retries."""


def check_id(value: Any, what: str = "record id") -> str:
    """``value`` as a Zoho record id (digits only), or DataError: nothing else reaches a URL."""
    text = str(value).strip()
    if not _ID.match(text):
        raise DataError(f"not a Zoho {what}: {text[:40]!r}")
    return text


def http_time(ms: int) -> str:
    """Epoch milliseconds -> the ISO 8601 time Zoho takes in ``If-Modified-Since``."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


class CreditBudget:
    """Credits spent in a rolling 24-hour window, held under a share of the daily credits."""

    def __init__(
        self, daily: int, share: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = max(1, int(daily * share))
        self.clock = clock
        self.spent: deque[tuple[float, int]] = deque()
        self.total = 0

    def used(self) -> int:
        horizon = self.clock() - DAY
        while self.spent and self.spent[0][0] <= horizon:
            self.total -= self.spent.popleft()[1]
        return self.total

    def wait_for(self, cost: int) -> float:
        """0 if ``cost`` credits may be spent now, else seconds until enough have aged out."""
        if self.used() + cost <= self.limit:
            return 0.0
        need = self.total + cost - self.limit
        freed = 0
        for at, credits in self.spent:
            freed += credits
            if freed >= need:
                return max(1.0, at + DAY - self.clock())
        return DAY

    def spend(self, cost: int) -> None:
        self.spent.append((self.clock(), cost))
        self.total += cost


class ZohoClient:
    def __init__(
        self,
        settings: ZohoSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_wait: float = 30.0,
        attempts: int = 4,
        sleep: Callable[[float], Any] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        verify: Any = (
            ssl.create_default_context(cafile=str(settings.ca_cert))
            if settings.ca_cert is not None
            else True
        )
        self.http = httpx.AsyncClient(
            headers={"Accept": "application/json"},
            timeout=settings.timeout,
            verify=verify,
            transport=transport,
            trust_env=False,
        )
        accounts, self.api = settings.hosts()
        self.tokens = TokenSource(
            self.http,
            accounts,
            settings.client_id.get_secret_value(),
            settings.client_secret.get_secret_value(),
            settings.refresh_token.get_secret_value(),
            clock=clock,
        )
        self.budget = CreditBudget(settings.daily_credits, settings.credit_share, clock)
        self.concurrency = settings.concurrency
        """Calls in flight at most (Zoho's concurrency limit of the edition, or less)."""
        self.slots = asyncio.Semaphore(settings.concurrency)
        self.backoff = Backoff(initial=1.0, maximum=30.0, attempts=attempts, max_wait=max_wait)
        """Retries of calls (:mod:`crm_pulse.retry`): backoff with jitter, Retry-After
        honoured up to ``max_wait``."""
        self.sleep = sleep
        self.calls = 0

    async def _once(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        cost: int,
    ) -> dict[str, Any]:
        wait = self.budget.wait_for(cost)
        if wait:
            raise RateLimited(
                f"Zoho credit share ({self.budget.limit} per 24 h) used up before {what}", wait
            )
        for refreshed in (False, True):
            token = await self.tokens.token()
            self.budget.spend(cost)
            self.calls += 1
            try:
                async with self.slots:
                    response = await self.http.request(
                        method,
                        f"{self.api}{path}",
                        params=params,
                        json=json,
                        headers={**(headers or {}), "Authorization": f"Zoho-oauthtoken {token}"},
                    )
                error = translate_status(response, what)
                if error is None:
                    if response.status_code == 204 or not response.content:
                        return {}  # Zoho's answer when nothing matches
                    data = response.json()
                    return dict(data) if isinstance(data, dict) else {"data": data}
            except Exception as exc:  # translated: the one place for vendor errors
                error = translate(exc, what)
            if isinstance(error, TokenExpired) and not refreshed:
                await self.tokens.invalidate(token)
                continue
            if isinstance(error, TokenExpired):
                raise FatalError(f"Zoho refused a freshly refreshed access token during {what}")
            raise error
        raise AssertionError("unreachable")

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        cost: int = 1,
        retry: bool = True,
    ) -> dict[str, Any]:
        """One API call (``path`` under the API domain), retried while transient when
        ``retry``; a RateLimited whose wait exceeds ``max_wait`` is raised at once."""
        what = f"{method} {path.split('?')[0]}"

        async def once() -> dict[str, Any]:
            return await self._once(
                method, path, what, params=params, json=json, headers=headers, cost=cost
            )

        def worth_retrying(error: CrmPulseError) -> bool:
            return retry and isinstance(error, RetriableError)

        try:
            return await retrying(
                f"Zoho {what}", once, self.backoff, retry_on=worth_retrying, sleep=self.sleep
            )
        except RateLimited as exc:
            if exc.retry_after is not None:
                raise
            # still refused after the backoff and Zoho named no wait (its daily credits, say):
            # the caller pauses a minute rather than hammering
            raise RateLimited(str(exc), PAUSE) from None

    # ------------------------------------------------------------------ records
    async def list_page(
        self,
        module: str,
        fields: Sequence[str],
        *,
        since_ms: int | None,
        page: int | None = None,
        page_token: str | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """One page of Get Records sorted by Modified_Time (ascending): ``page`` 1..10 covers
        the first 2,000 records, ``page_token`` (from the previous page's info) the rest."""
        params: dict[str, Any] = {
            "fields": ",".join(fields),
            "sort_by": "Modified_Time",
            "sort_order": "asc",
            "per_page": PER_PAGE,
        }
        if page_token is not None:
            params["page_token"] = page_token
        else:
            params["page"] = page or 1
        headers = {"If-Modified-Since": http_time(since_ms)} if since_ms is not None else None
        data = await self.request("GET", f"/crm/v8/{quote(module)}", params=params, headers=headers)
        return list(data.get("data") or []), dict(data.get("info") or {})

    async def deleted_page(
        self, module: str, *, since_ms: int | None, page: int
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """One page of Get Deleted Records (recycle bin and permanently deleted)."""
        headers = {"If-Modified-Since": http_time(since_ms)} if since_ms is not None else None
        data = await self.request(
            "GET",
            f"/crm/v8/{quote(module)}/deleted",
            params={"type": "all", "page": page, "per_page": PER_PAGE},
            headers=headers,
        )
        return list(data.get("data") or []), dict(data.get("info") or {})

    async def get_many(
        self, module: str, ids: Sequence[str], fields: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The records with these ids that exist (at most 100 ids a call)."""
        out: list[dict[str, Any]] = []
        checked = [check_id(i) for i in ids]
        for start in range(0, len(checked), 100):
            chunk = checked[start : start + 100]
            data = await self.request(
                "GET",
                f"/crm/v8/{quote(module)}",
                params={"ids": ",".join(chunk), "fields": ",".join(fields)},
            )
            out.extend(dict(r) for r in data.get("data") or [] if isinstance(r, dict))
        return out

    async def current_user_id(self, *, quiet: bool = True) -> str:
        """The id of the user this token acts as (``GET users?type=CurrentUser``, scope
        ``ZohoCRM.users.READ``): the ``Modified_By`` of crm-pulse's own writes. "" when the
        scope is missing (a warning; our write-backs then count as that user's changes);
        ``quiet=False`` raises instead (``crm-pulse doctor``)."""
        try:
            data = await self.request("GET", "/crm/v8/users", params={"type": "CurrentUser"})
        except (FatalError, SkippableError) as exc:
            if not quiet:
                raise
            log.warning("Zoho: the API user is unknown, its changes count as a user's: %s", exc)
            return ""
        users = [u for u in data.get("users") or [] if isinstance(u, dict)]
        return str(users[0].get("id") or "") if users else ""

    async def update(
        self, module: str, records: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Update Records (PUT, at most 100): one result per record, in order. Workflows are
        not triggered (``trigger: []``): these are metric values, not user edits. A refusal of
        the whole call raises; a 400 that names records comes back as per-record results."""
        if len(records) > UPDATE_BATCH:
            raise ValueError(f"Zoho updates at most {UPDATE_BATCH} records a call")
        body = {"data": [dict(r) for r in records], "trigger": []}
        try:
            data = await self.request("PUT", f"/crm/v8/{quote(module)}", json=body, retry=False)
        except ZohoError as exc:
            if exc.status == 400 and len(exc.results) == len(records):
                return exc.results  # every record refused, each with its reason
            if exc.status == 400 and len(records) == 1:
                return [{"status": "error", "code": exc.code, "message": str(exc)}]
            raise
        results = [dict(r) for r in data.get("data") or [] if isinstance(r, dict)]
        if len(results) != len(records):
            raise RetriableError(
                f"Zoho answered {len(results)} results for {len(records)} updated records"
            )
        return results

    # ------------------------------------------------------------------ metadata
    async def fields(self, module: str, *, retry: bool = True) -> list[dict[str, Any]]:
        """Field metadata of a module (api_name, field_label, data_type, pick_list_values)."""
        data = await self.request(
            "GET", "/crm/v8/settings/fields", params={"module": module}, retry=retry
        )
        return [dict(f) for f in data.get("fields") or [] if isinstance(f, dict)]

    async def create_field(self, module: str, label: str, data_type: str) -> dict[str, Any]:
        """Create a custom field (POST settings/fields); Zoho derives its API name."""
        spec: dict[str, Any] = {"field_label": label, "data_type": data_type}
        if data_type in ("double", "currency"):
            spec.update(length=16, decimal_place=2)
        data = await self.request(
            "POST",
            "/crm/v8/settings/fields",
            params={"module": module},
            json={"fields": [spec]},
            retry=False,
        )
        results = data.get("fields") or []
        return dict(results[0]) if results and isinstance(results[0], dict) else {}

    async def watch(
        self, channel_id: int, events: Sequence[str], notify_url: str, token: str, expiry: str
    ) -> dict[str, Any]:
        """Enable (or renew) the notification channel: POST actions/watch."""
        body = {
            "watch": [
                {
                    "channel_id": channel_id,
                    "events": list(events),
                    "channel_expiry": expiry,
                    "token": token,
                    "notify_url": notify_url,
                    "notify_on_related_action": False,
                }
            ]
        }
        return await self.request("POST", "/crm/v8/actions/watch", json=body)

    async def aclose(self) -> None:
        await self.http.aclose()
