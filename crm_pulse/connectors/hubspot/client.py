"""The HubSpot client: hubspot-api-client (urllib3) in a thread, JSON in and out.

Calls go through the official SDK's generated ``*_with_http_info`` APIs with
``_preload_content=False``, so the raw answer (status, headers, JSON) is ours: the
``X-HubSpot-RateLimit-*`` headers are read on every call and the SDK's model classes stay out of
the connector. Blocking calls run in a worker thread (``asyncio.to_thread``).

Rate limits are honoured before HubSpot has to refuse: when the last answer said no request is
left in the current interval, the next call waits for the interval to pass; calls are also
counted, as "now" until their answer and from it on, in a rolling window of the interval the
headers announce
(:class:`~crm_pulse.retry.RollingWindow`, 100 per 10 s until told), so that concurrent calls (the
sink sends several batches at once) stay under it too; and the search API (5 requests per second
per portal) has its own window. Search pages follow one another (each asks from where the last
one ended), so counting each from its answer would cost a round trip per second's allowance
(5 pages of 200 ms per 1.2 s): the search window counts a page from when its request left the
worker thread plus ``SEARCH_ARRIVAL`` plus whatever its round trip took beyond the fastest one
(never later than its answer; see :class:`~crm_pulse.retry.RollingWindow`'s ``arrival``). Should
HubSpot refuse a search anyway, the client stops that credit and counts from answers.

Retries, the ``allowed_methods=None`` way (POST included, since every call here is either a read
or an idempotent set of values): 5xx and connection errors back off and try again, with the
one policy of :mod:`crm_pulse.retry`. They are
done here, asynchronously, and urllib3's own are switched off (``Retry(0)``): left on, urllib3
retries GETs (never POSTs) on a 429 by sleeping out Retry-After inside the worker thread, then
reports "too many 429 error responses" without the status. A 429 on a
read waits for Retry-After (up to ``max_wait``); a 429 on a write is raised at once as
:class:`~crm_pulse.errors.RateLimited` so that the write-back outbox schedules the batch.
Nothing that creates a record is retried blindly (property creation treats 409 as done).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hubspot import HubSpot
from urllib3.util.retry import Retry

from ...errors import CrmPulseError, RateLimited, RetriableError
from ...retry import Backoff, Counted, RollingWindow, retrying
from .errors import translate
from .settings import HubSpotSettings

__all__ = ["SEARCH_ARRIVAL", "SEARCH_PER_SECOND", "HubSpotClient", "RateLimitState"]

SEARCH_PER_SECOND = 5.0
"""HubSpot's search API limit: 5 requests per second per portal (vendor-contracts.md)."""

SEARCH_ARRIVAL = 0.1
"""Seconds within which a search request reaches HubSpot after it leaves our worker thread, on
the quickest round trip: the network's one-way time to HubSpot (a few to ~80 ms from anywhere
on the internet) with room to spare. A search counts in the client's window from its start plus
this plus its round trip beyond the quickest one, instead of from its answer."""

log = logging.getLogger("crm_pulse.hubspot")


@dataclass
class RateLimitState:
    """What the last answer's X-HubSpot-RateLimit-* headers said."""

    max: int | None = None
    remaining: int | None = None
    interval_ms: int | None = None
    daily_remaining: int | None = None

    seen_at: float = 0.0
    """Monotonic time of the answer these values came from."""

    def update(self, headers: Any, at: float | None = None) -> None:
        h = {str(k).lower(): str(v) for k, v in dict(headers or {}).items()}
        if not any(k.startswith("x-hubspot-ratelimit-") for k in h):
            return
        self.seen_at = time.monotonic() if at is None else at

        def num(name: str) -> int | None:
            value = h.get(name)
            return int(value) if value is not None and value.isdigit() else None

        self.max = num("x-hubspot-ratelimit-max") or self.max
        remaining = num("x-hubspot-ratelimit-remaining")
        self.remaining = remaining if remaining is not None else self.remaining
        self.interval_ms = num("x-hubspot-ratelimit-interval-milliseconds") or self.interval_ms
        daily = num("x-hubspot-ratelimit-daily-remaining")
        self.daily_remaining = daily if daily is not None else self.daily_remaining

    def wait_needed(self, now: float) -> float:
        """Seconds to wait before the next call: the rest of an exhausted interval, else 0."""
        if self.remaining is None or self.remaining > 0 or not self.interval_ms:
            return 0.0
        return max(0.0, self.seen_at + self.interval_ms / 1000 - now)


class HubSpotClient:
    def __init__(
        self,
        settings: HubSpotSettings,
        *,
        attempts: int = 4,
        max_wait: float = 30.0,
        search_per_second: float | None = SEARCH_PER_SECOND,
        search_arrival: float | None = SEARCH_ARRIVAL,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        config: dict[str, Any] = {
            "access_token": settings.access_token.get_secret_value(),
            "host": str(settings.base_url).rstrip("/"),
            # every retry is ours (see the module docstring): urllib3 hands back each answer
            "retry": Retry(total=0, respect_retry_after_header=False, raise_on_status=False),
        }
        if settings.ca_cert is not None:
            config["ssl_ca_cert"] = str(settings.ca_cert)
        self.sdk = HubSpot(**config)
        self.timeout = settings.timeout
        self.backoff = Backoff(initial=1.0, maximum=30.0, attempts=attempts, max_wait=max_wait)
        """Retries of reads and idempotent writes (:mod:`crm_pulse.retry`)."""
        self.max_wait = max_wait
        self.sleep = sleep
        self.limits = RateLimitState()
        self._apis: dict[str, Any] = {}
        self.window = RollingWindow(100, 10.0, margin=0.1, until_answered=True, sleep=self._wait)
        """Calls per rolling interval: the lowest tier's 100 per 10 s until the
        X-HubSpot-RateLimit-Max / -Interval-Milliseconds headers say the account's. HubSpot
        counts a call when it arrives, which a loaded machine (a stalled event loop or worker
        thread) or a slow network can put well after our start: each call is counted as "now"
        until its answer and from its answer on, never before HubSpot counted it, so no stall
        can let a burst into HubSpot's window."""
        self.search_window = (
            RollingWindow(
                max(1, int(search_per_second)),
                max(1.0, 1.0 / search_per_second),
                margin=0.02,
                until_answered=True,
                arrival=search_arrival,
                sleep=self._wait,
            )
            if search_per_second
            else None
        )
        self._pace = asyncio.Lock()
        self.waited = 0.0
        """Seconds spent waiting for rate limits so far (pacing and Retry-After)."""

    # ------------------------------------------------------------ plumbing
    def _api(self, path: str) -> Any:
        """The SDK's API object at ``path`` (``crm.objects.search_api``), built once.

        The SDK's discovery builds a new API client, configuration and connection pool on
        every attribute access (a TLS handshake per call, and pools left open); kept here,
        connections are reused across calls.
        """
        api = self._apis.get(path)
        if api is None:
            api = self.sdk
            for part in path.split("."):
                api = getattr(api, part)
            self._apis[path] = api
        return api

    def _call(
        self, fn: Callable[..., Any], leaving: Callable[[], None], *args: Any, **kwargs: Any
    ) -> tuple[int, Any]:
        leaving()  # in the worker thread: the request leaves now, whatever held it up before
        response = fn(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
        try:
            self.limits.update(response.headers)
            data = response.data
        finally:
            response.release_conn()
        return int(response.status), json.loads(data) if data else None

    async def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self.waited += seconds
            await self.sleep(seconds)

    async def _before(self, search: bool) -> tuple[Counted, Counted | None]:
        """Honour the last rate-limit headers, and pace the calls and the search API (returns
        the windows' entries, to count the call from its answer)."""
        async with self._pace:
            await self._wait(min(self.max_wait, self.limits.wait_needed(time.monotonic())))
            entry = await self.window.acquire()
            if search and self.search_window is not None:
                try:
                    return entry, await self.search_window.acquire()
                except BaseException:  # cancelled: the call never left
                    self.window.answered(entry)
                    raise
            return entry, None

    async def call(
        self,
        what: str,
        fn: Callable[..., Any],
        *args: Any,
        write: bool = False,
        search: bool = False,
        **kwargs: Any,
    ) -> tuple[int, Any]:
        """Run one SDK call in a thread; returns (status, JSON). Errors are translated.

        ``write`` marks an idempotent write: transient failures are retried like reads, but a
        429 is raised at once (the outbox schedules it with the vendor's Retry-After).
        """

        async def once() -> tuple[int, Any]:
            entry, searched = await self._before(search)

            def leaving() -> None:
                self.window.sent(entry)
                if searched is not None and self.search_window is not None:
                    self.search_window.sent(searched)

            try:
                return await asyncio.to_thread(self._call, fn, leaving, *args, **kwargs)
            except Exception as exc:  # the one place for vendor errors
                error = translate(exc, what)
                if searched is not None and isinstance(error, RateLimited):
                    self._refused_search()
                raise error from None
            finally:
                self.window.answered(entry)  # HubSpot counted it by now, if it saw it
                if searched is not None and self.search_window is not None:
                    self.search_window.answered(searched)  # HubSpot counted it by now
                if self.limits.max and self.limits.interval_ms:  # the account's own limit
                    self.window.calls = self.limits.max
                    self.window.seconds = self.limits.interval_ms / 1000

        def worth_retrying(error: CrmPulseError) -> bool:
            if isinstance(error, RateLimited):
                return not write
            return isinstance(error, RetriableError)

        return await retrying(
            f"HubSpot {what}", once, self.backoff, retry_on=worth_retrying, sleep=self._wait
        )

    def _refused_search(self) -> None:
        """HubSpot refused a search although the window had room: its count came later than
        ``SEARCH_ARRIVAL`` allowed for, so searches count from their answers from now on."""
        window = self.search_window
        if window is not None and window.arrival is not None:
            window.arrival = None
            log.warning(
                "HubSpot refused a search within the client's pacing: searches are counted "
                "from their answers from now on"
            )

    # ------------------------------------------------------------ endpoints
    async def search(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        api = self._api("crm.objects.search_api")
        _, data = await self.call(
            f"search {object_type}", api.do_search_with_http_info, object_type, body, search=True
        )
        return dict(data or {})

    async def list_archived(
        self, object_type: str, after: str | None, properties: Sequence[str]
    ) -> dict[str, Any]:
        api = self._api("crm.objects.basic_api")
        kwargs: dict[str, Any] = {"limit": 100, "archived": True, "properties": list(properties)}
        if after:
            kwargs["after"] = after
        _, data = await self.call(
            f"list archived {object_type}", api.get_page_with_http_info, object_type, **kwargs
        )
        return dict(data or {})

    async def owners(self, *, archived: bool, after: str | None) -> dict[str, Any]:
        """One page (100) of owners: the active ones, or with ``archived`` only the archived
        ones (``GET /crm/v3/owners``; owners have no search API)."""
        api = self._api("crm.owners.owners_api")
        kwargs: dict[str, Any] = {"limit": 100, "archived": archived}
        if after:
            kwargs["after"] = after
        which = "archived owners" if archived else "owners"
        _, data = await self.call(f"list {which}", api.get_page_with_http_info, **kwargs)
        return dict(data or {})

    async def batch_read(
        self, object_type: str, ids: Sequence[str], properties: Sequence[str]
    ) -> list[dict[str, Any]]:
        api = self._api("crm.objects.batch_api")
        out: list[dict[str, Any]] = []
        for start in range(0, len(ids), 100):
            body = {
                "inputs": [{"id": i} for i in ids[start : start + 100]],
                "properties": list(properties),
            }
            _, data = await self.call(
                f"batch read {object_type}", api.read_with_http_info, object_type, body
            )
            out.extend((data or {}).get("results", []))
        return out

    async def associated(
        self, from_type: str, to_type: str, ids: Sequence[str]
    ) -> dict[str, list[str]]:
        """Record id -> ids of its associated ``to_type`` records (associations v4 batch read;
        records without any are absent)."""
        api = self._api("crm.associations.v4.batch_api")
        out: dict[str, list[str]] = {}
        for start in range(0, len(ids), 100):
            body = {"inputs": [{"id": i} for i in ids[start : start + 100]]}
            _, data = await self.call(
                f"read {from_type} to {to_type} associations",
                api.get_page_with_http_info,
                from_type,
                to_type,
                body,
            )
            for result in (data or {}).get("results", []):
                rid = str((result.get("from") or {}).get("id"))
                targets = [str(t.get("toObjectId")) for t in result.get("to") or []]
                out.setdefault(rid, []).extend(targets)
                after = ((result.get("paging") or {}).get("next") or {}).get("after")
                if after:  # more than one page (500) of associations: read the rest
                    out[rid].extend(await self._more_associated(from_type, to_type, rid, after))
        return out

    async def _more_associated(
        self, from_type: str, to_type: str, rid: str, after: str
    ) -> list[str]:
        """The associations of one record after ``after`` (v4 list, 500 per page)."""
        api = self._api("crm.associations.v4.basic_api")
        out: list[str] = []
        cursor: str | None = after
        while cursor:
            _, data = await self.call(
                f"read {from_type} {rid} to {to_type} associations",
                api.get_page_with_http_info,
                from_type,
                rid,
                to_type,
                after=cursor,
                limit=500,
            )
            out.extend(str(t.get("toObjectId")) for t in (data or {}).get("results", []))
            cursor = (((data or {}).get("paging") or {}).get("next") or {}).get("after")
        return out

    async def batch_update(
        self, object_type: str, inputs: list[dict[str, Any]]
    ) -> tuple[int, dict[str, Any]]:
        api = self._api("crm.objects.batch_api")
        status, data = await self.call(
            f"batch update {object_type}",
            api.update_with_http_info,
            object_type,
            {"inputs": inputs},
            write=True,
        )
        return status, dict(data or {})

    async def pipelines(self, object_type: str) -> list[dict[str, Any]]:
        api = self._api("crm.pipelines.pipelines_api")
        _, data = await self.call(
            f"read {object_type} pipelines", api.get_all_with_http_info, object_type
        )
        return list((data or {}).get("results", []))

    async def properties(self, object_type: str) -> list[dict[str, Any]]:
        api = self._api("crm.properties.core_api")
        _, data = await self.call(
            f"read {object_type} properties", api.get_all_with_http_info, object_type
        )
        return list((data or {}).get("results", []))

    async def create_property(self, object_type: str, body: dict[str, Any]) -> None:
        api = self._api("crm.properties.core_api")
        await self.call(
            f"create property {body.get('name')}",
            api.create_with_http_info,
            object_type,
            body,
            write=True,
        )

    async def groups(self, object_type: str) -> list[dict[str, Any]]:
        api = self._api("crm.properties.groups_api")
        _, data = await self.call(
            f"read {object_type} property groups", api.get_all_with_http_info, object_type
        )
        return list((data or {}).get("results", []))

    async def create_group(self, object_type: str, name: str, label: str) -> None:
        api = self._api("crm.properties.groups_api")
        await self.call(
            f"create property group {name}",
            api.create_with_http_info,
            object_type,
            {"name": name, "label": label},
            write=True,
        )

    def close(self) -> None:
        """Close the connection pools of the API objects built so far."""
        for api in self._apis.values():
            rest = getattr(api.api_client, "rest_client", None)
            pool = getattr(rest, "pool_manager", None)
            if pool is not None:
                pool.clear()
            api.api_client.close()
        self._apis.clear()
