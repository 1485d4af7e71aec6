"""The Salesforce client: simple-salesforce in a worker thread, with the daily API budget.

* Login: ``session_id`` (an access token) as given, or the OAuth 2.0 client-credentials flow of
  a connected app (``client_id``/``client_secret``, token from ``<instance_url>/services/oauth2/
  token``); with client credentials an expired session is renewed once and the call repeated.
* TLS: with ``ca_cert`` the session trusts that CA and ignores the environment
  (``trust_env = False``: ``REQUESTS_CA_BUNDLE`` would otherwise replace ``verify``).
* Budget: every API response's ``Sforce-Limit-Info: api-usage=N/M`` is read (in the session's
  ``send``, so error answers and query pages count too). The connector's own requests are
  counted per minute over a rolling 24 hours; once they reach ``budget_share x M`` the next
  request raises :class:`~crm_pulse.errors.RateLimited` with the seconds until the oldest calls
  leave the window, without calling Salesforce. A ``403 REQUEST_LIMIT_EXCEEDED`` raises RateLimited with
  ``limit_pause`` seconds (Salesforce gives no Retry-After).
* Reads are retried on transient errors (5xx, resets) with backoff; writes are not retried here:
  the write-back outbox owns their retries.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import quote, urlsplit

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.bulk2 import SFBulk2Handler
from simple_salesforce.exceptions import SalesforceExpiredSession

from ...errors import CrmPulseError, FatalError, RateLimited, RetriableError, SkippableError
from ...retry import Backoff, retrying
from .errors import VENDOR_ERRORS, translate
from .settings import SalesforceSettings

__all__ = ["ApiBudget", "SalesforceClient"]

log = logging.getLogger("crm_pulse.salesforce")

T = TypeVar("T")
DAY = 86_400.0
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


@dataclass
class ApiBudget:
    """The org's daily API usage (from Sforce-Limit-Info) and our own calls in the last 24 h."""

    share: float
    clock: Callable[[], float] = time.time
    used: int | None = None
    """Org-wide calls in the last 24 h, as Salesforce last said."""
    limit: int | None = None
    """The org's daily allocation, as Salesforce last said."""
    _minutes: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, header: str | None) -> None:
        """Count one answered call of ours and note what Salesforce said about the org."""
        match = _USAGE.search(header or "")
        if match:
            self.used, self.limit = int(match.group(1)), int(match.group(2))
        with self._lock:
            minute = int(self.clock() // 60)
            self._minutes[minute] = self._minutes.get(minute, 0) + 1

    def _trim(self, now: float) -> None:
        oldest = int((now - DAY) // 60)
        for minute in [m for m in self._minutes if m <= oldest]:
            del self._minutes[minute]

    @property
    def ours(self) -> int:
        """Calls this connector made in the last 24 hours."""
        with self._lock:
            self._trim(self.clock())
            return sum(self._minutes.values())

    @property
    def allowance(self) -> int | None:
        """Calls this connector may make per 24 h (None until Salesforce told the limit)."""
        return None if self.limit is None else int(self.limit * self.share)

    def check(self, what: str) -> None:
        """Raise RateLimited if our share of the day is used up (calls are counted as they
        are answered, in :meth:`observe`)."""
        allowance = self.allowance
        with self._lock:
            now = self.clock()
            self._trim(now)
            ours = sum(self._minutes.values())
            if allowance is not None and ours >= allowance:
                first = min(self._minutes) if self._minutes else int(now // 60)
                wait = max(60.0, (first + 1) * 60 + DAY - now)
                raise RateLimited(
                    f"Salesforce API budget used up before {what}: {ours} calls in 24 h, "
                    f"budget_share {self.share:g} of {self.limit} allows {allowance}",
                    wait,
                )


class _BudgetedSession(requests.Session):
    """A requests session that asks the budget before every API request it sends, so a query
    paging through ``nextRecordsUrl`` stops at the budget too, not only between our calls."""

    def __init__(self, budget: ApiBudget) -> None:
        super().__init__()
        self.budget = budget

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        api = "/services/data/" in (request.url or "")
        if api:
            self.budget.check(f"{request.method} {urlsplit(request.url or '').path}")
        response = super().send(request, **kwargs)
        if api:
            self.budget.observe(response.headers.get("Sforce-Limit-Info"))
        return response


class SalesforceClient:
    """One org, through simple-salesforce; every call runs in a worker thread."""

    def __init__(
        self,
        settings: SalesforceSettings,
        *,
        attempts: int = 4,
        limit_pause: float = 300.0,
        sleep: Callable[[float], Any] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.backoff = Backoff(initial=1.0, maximum=30.0, attempts=attempts)
        """Retries of reads (:mod:`crm_pulse.retry`); writes are not retried here."""
        self.limit_pause = limit_pause
        """Seconds to pause after 403 REQUEST_LIMIT_EXCEEDED (Salesforce sends no Retry-After)."""
        self.sleep = sleep
        self.budget = ApiBudget(settings.budget_share, clock)
        self.write_headers = {"Sforce-Call-Options": f"client={settings.client_id_header}"}
        self.session = _BudgetedSession(self.budget)
        if settings.ca_cert is not None:
            self.session.verify = str(settings.ca_cert)
            self.session.trust_env = False
        self.bulk_page = 50_000
        """Rows per Bulk API 2.0 results page."""
        self.bulk_wait = 1.0
        """Seconds before the first Bulk API job status check (then simple-salesforce backs off)."""
        self._sf: Salesforce | None = None
        self._login_lock = threading.Lock()

    # ------------------------------------------------------------ login
    def _token(self) -> tuple[str, str]:
        """Client-credentials flow: (access token, instance URL)."""
        s = self.settings
        assert s.client_id is not None and s.client_secret is not None
        url = f"{s.instance_url}/services/oauth2/token"
        try:
            response = self.session.post(
                url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": s.client_id,
                    "client_secret": s.client_secret.get_secret_value(),
                },
                timeout=s.timeout,
            )
        except requests.RequestException as exc:
            raise RetriableError(f"Salesforce login unreachable: {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise RetriableError(f"Salesforce login answered {response.status_code}")
        if response.status_code != 200:
            try:
                body = response.json()
            except ValueError:
                body = {}
            if not isinstance(body, dict):
                body = {}
            reason = body.get("error_description") or body.get("error") or "no reason given"
            raise FatalError(
                f"Salesforce login (client credentials) refused with {response.status_code} "
                f"{reason}: check client_id, client_secret and the connected app's run-as user"
            )
        data = response.json()
        return str(data["access_token"]), str(data.get("instance_url") or s.instance_url)

    def sf(self, *, renew: bool = False) -> Salesforce:
        """The simple-salesforce client (logged in on first use)."""
        with self._login_lock:
            if self._sf is not None and not renew:
                return self._sf
            s = self.settings
            if s.session_id is not None:
                if renew:
                    raise FatalError(
                        "Salesforce session expired (INVALID_SESSION_ID): give a new session_id, "
                        "or use client_id and client_secret so crm-pulse can log in again"
                    )
                token, instance = s.session_id.get_secret_value(), s.instance_url
            else:
                token, instance = self._token()
            parts = urlsplit(instance)
            self._sf = Salesforce(
                session_id=token,
                instance_url=f"{parts.scheme}://{parts.netloc}",
                version=s.api_version,
                session=self.session,
                # plain dicts, decoded by json's C parser: an OrderedDict per record (the
                # default) doubles the CPU a 2,000-record page costs to decode
                object_pairs_hook=None,
            )
            return self._sf

    # ------------------------------------------------------------ calls
    def _run(self, what: str, fn: Callable[[Salesforce], T]) -> T:
        try:
            return fn(self.sf())
        except SalesforceExpiredSession:
            if self.settings.session_id is not None:
                raise
            log.info("renewing the Salesforce session", extra={"what": what})
        return fn(self.sf(renew=True))

    async def call(self, what: str, fn: Callable[[Salesforce], T], *, retry: bool = True) -> T:
        """Run ``fn(sf)`` in a thread; vendor errors are translated, reads retried."""

        async def once() -> T:
            try:
                return await asyncio.to_thread(self._run, what, fn)
            except VENDOR_ERRORS as exc:  # the one place vendor errors are translated
                raise translate(exc, what, pause=self.limit_pause) from None

        def worth_retrying(error: CrmPulseError) -> bool:
            # a used-up API allocation is not waited out here: the caller pauses or schedules
            return (
                retry and isinstance(error, RetriableError) and not isinstance(error, RateLimited)
            )

        return await retrying(
            f"Salesforce {what}", once, self.backoff, retry_on=worth_retrying, sleep=self.sleep
        )

    # ------------------------------------------------------------ endpoints
    async def query_chunks(
        self, what: str, soql: str, *, include_deleted: bool = False, size: int = 2000
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The query's records in lists of up to ``size``, through ``query_all_iter`` (which
        follows ``nextRecordsUrl``), each step in a worker thread.

        A failed step is not retried inside the query (its iterator cannot resume); the error
        propagates and the source starts again from its cursor. Closed early (a caller that
        stopped, a step cancelled), a step still running in its thread stops before it asks
        for another page.
        """
        state: dict[str, Iterator[Any]] = {}
        stopped = threading.Event()

        def step(sf: Salesforce) -> list[dict[str, Any]]:
            records = state.get("it")
            if records is None:
                records = state["it"] = sf.query_all_iter(
                    soql, include_deleted=include_deleted, timeout=self.settings.timeout
                )
            out: list[dict[str, Any]] = []
            try:
                for record in records:
                    out.append(dict(record))
                    if len(out) >= size or stopped.is_set():
                        break
            except BaseException:
                if not started:
                    state.pop("it", None)  # the first page failed: a retry starts afresh
                raise
            return out

        started = False
        try:
            while True:
                chunk = await self.call(what, step, retry=not started)
                started = True
                if chunk:
                    yield chunk
                if len(chunk) < size:
                    return
        finally:
            stopped.set()

    async def restful(self, what: str, path: str, *, method: str = "GET", **kwargs: Any) -> Any:
        timeout = self.settings.timeout
        return await self.call(
            what,
            lambda sf: sf.restful(path, method=method, timeout=timeout, **kwargs),
            retry=method == "GET",
        )

    async def own_user_id(self) -> str:
        """The id of the user this session acts as (``chatter/users/me``): its changes are
        crm-pulse's own writes. "" when the org refuses it (Chatter turned off): a warning,
        and our write-backs then count as that user's changes."""
        try:
            me = await self.restful("read the API user", "chatter/users/me")
        except (FatalError, SkippableError) as exc:
            log.warning(
                "Salesforce: the API user is unknown, its changes count as a user's: %s", exc
            )
            return ""
        return str((me or {}).get("id") or "")

    async def describe(self, sobject: str) -> dict[str, Any]:
        data = await self.restful(
            f"describe {sobject}", f"sobjects/{quote(sobject, safe='')}/describe"
        )
        return dict(data or {})

    async def update_collection(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``PATCH composite/sobjects`` (allOrNone false): one result per record, in order."""
        data = await self.restful(
            f"update {len(records)} records",
            "composite/sobjects",
            method="PATCH",
            json={"allOrNone": False, "records": records},
            headers=self.write_headers,
        )
        return list(data or [])

    async def count(self, what: str, soql: str) -> int:
        """``totalSize`` of a ``SELECT COUNT() ...`` query."""
        timeout = self.settings.timeout
        data = await self.call(what, lambda sf: sf.query(soql, timeout=timeout))
        return int(data.get("totalSize") or 0)

    async def bulk_chunks(
        self, what: str, sobject: str, soql: str, *, include_deleted: bool = False
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """A Bulk API 2.0 query job's records, in CSV pages of up to ``bulk_page`` rows (values
        are text, nulls empty). The job is created, awaited and read through simple-salesforce's
        ``bulk2``, each step in a worker thread; a failure is not retried inside the job."""
        state: dict[str, Iterator[Any]] = {}

        def step(sf: Salesforce) -> list[dict[str, Any]] | None:
            pages = state.get("it")
            if pages is None:
                handler = cast(SFBulk2Handler, sf.bulk2)
                kind = getattr(handler, sobject)
                run = kind.query_all if include_deleted else kind.query
                pages = state["it"] = iter(
                    run(soql, max_records=self.bulk_page, wait=self.bulk_wait)
                )
            try:
                text = next(pages)
            except StopIteration:
                return None
            except BaseException:
                state.pop("it", None)
                raise
            return [dict(row) for row in csv.DictReader(io.StringIO(str(text)))]

        while True:
            chunk = await self.call(what, step, retry=False)
            if chunk is None:
                return
            yield chunk

    async def query_records(
        self, what: str, soql: str, *, include_deleted: bool = False
    ) -> list[dict[str, Any]]:
        """Every record of a small query."""
        out: list[dict[str, Any]] = []
        async for chunk in self.query_chunks(what, soql, include_deleted=include_deleted):
            out.extend(chunk)
        return out

    async def create_record(self, sobject: str, body: dict[str, Any]) -> Any:
        """``POST sobjects/{type}``."""
        return await self.restful(
            f"create {sobject}",
            f"sobjects/{quote(sobject, safe='')}",
            method="POST",
            json=body,
            headers=self.write_headers,
        )

    async def create_custom_field(self, body: dict[str, Any]) -> Any:
        """``POST tooling/sobjects/CustomField``."""
        return await self.restful(
            f"create custom field {body.get('FullName')}",
            "tooling/sobjects/CustomField",
            method="POST",
            json=body,
            headers=self.write_headers,
        )

    def close(self) -> None:
        self.session.close()
