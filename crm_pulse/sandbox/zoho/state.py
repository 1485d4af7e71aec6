"""The org's state and the changes a test or the sandbox makes to it (records, fields, faults,
limits), under one lock: tests change it while the server serves it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from .model import _ID_BASE, MODULES, REP, STAGES


class _Org:
    """One Zoho CRM org: records, custom fields, channels, tokens, credits and faults."""

    def __init__(
        self,
        *,
        client_id: str = "1000.TESTCLIENT",
        client_secret: str = "zoho-test-secret",
        refresh_token: str = "1000.refresh.test",
        clock: Callable[[], float] = time.time,
        offset_minutes: int = 330,
        daily_credits: int = 1_000_000,
        token_lifetime: int = 3600,
        custom_field_limit: int = 50,
        notify_api_writes: bool = True,
        modules: Sequence[str] = MODULES,
        record_limit: int = 100_000,
    ) -> None:
        self.modules = tuple(modules)
        self.record_limit = record_limit
        self.client_id = client_id
        self.notify_api_writes = notify_api_writes
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.clock = clock
        self.tz = timezone(timedelta(minutes=offset_minutes))
        self.daily_credits = daily_credits
        self.token_lifetime = token_lifetime
        self.custom_field_limit = custom_field_limit
        self.stages: list[tuple[str, str, str, int]] = list(STAGES)
        self.records: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in MODULES}
        self.deleted: dict[str, list[dict[str, Any]]] = {m: [] for m in MODULES}
        self.custom: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in MODULES}
        self.channels: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, float] = {}
        self.calls: list[tuple[str, str]] = []
        self.token_requests = 0
        self.page_tokens_used = 0
        self.updates: list[tuple[str, str, dict[str, Any]]] = []
        self.delivered: list[tuple[str, str, tuple[str, ...], int]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.spent: list[tuple[float, int]] = []
        self._forced: list[float | None] = []
        self._faults: list[tuple[int, float]] = []  # (status, delay) for the next calls
        self.concurrency: int | None = None
        """API calls the org may have in flight at once (Zoho's concurrency limit per edition:
        Free 5, Standard 10, Professional 15, ...); a call beyond it gets 429. None: no limit."""
        self.in_flight = 0
        self.concurrency_refusals = 0
        """Calls refused because ``concurrency`` were already in flight."""
        self._page_tokens: dict[str, tuple[str, int, float]] = {}
        self._lock = threading.RLock()
        self._next = _ID_BASE
        self.missing_scopes: set[str] = set()
        """Scopes the grant lacks (``ZohoCRM.users.READ``: the users API answers 401
        ``OAUTH_SCOPE_MISMATCH``)."""

    # ------------------------------------------------------------ changing the org
    def _time(self, seconds: float) -> str:
        return datetime.fromtimestamp(int(seconds), self.tz).isoformat()

    @staticmethod
    def _seconds(text: str) -> int:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())

    def _stamp(self, record: dict[str, Any], at: float | None) -> None:
        last = self._seconds(record["Modified_Time"]) if record.get("Modified_Time") else 0
        now = int(at) if at is not None else max(int(self.clock()), last + 1)
        record["Modified_Time"] = self._time(now)

    def create(
        self,
        module: str,
        data: Mapping[str, Any] | None = None,
        *,
        at: float | None = None,
        by: Mapping[str, str] = REP,
    ) -> str:
        """Create a record as the user ``by`` (``Created_By``, ``Modified_By``)."""
        with self._lock:
            self._next += 1
            rid = str(self._next)
            record: dict[str, Any] = {
                "id": rid,
                "Owner": dict(REP),
                "Created_By": dict(by),
                "Created_Time": self._time(at if at is not None else self.clock()),
            }
            record.update(data or {})
            record["Modified_By"] = dict(by)
            self._stamp(record, at)
            self.records[module][rid] = record
            return rid

    def update(
        self, module: str, rid: str, data: Mapping[str, Any], *, by: Mapping[str, str] = REP
    ) -> None:
        """Change a record as the user ``by`` (``Modified_By``)."""
        with self._lock:
            record = self.records[module][rid]
            record.update(data)
            record["Modified_By"] = dict(by)
            self._stamp(record, None)

    def delete(self, module: str, rid: str, *, permanent: bool = False) -> None:
        with self._lock:
            record = self.records[module].pop(rid)
            now = max(int(self.clock()), self._seconds(record["Modified_Time"]))
            self.deleted[module].append(
                {
                    "deleted_by": {"name": "Rep One", "id": "5725767000000200001"},
                    "id": rid,
                    "display_name": str(record.get("Deal_Name") or record.get("Last_Name") or rid),
                    "type": "permanent" if permanent else "recycle",
                    "created_by": {"name": "Rep One", "id": "5725767000000200001"},
                    "deleted_time": self._time(now),
                }
            )

    def add_field(self, module: str, label: str, data_type: str = "double") -> str:
        with self._lock:
            api = label.strip().replace(" ", "_")
            self.custom[module][api] = {
                "api_name": api,
                "field_label": label,
                "display_label": label,
                "data_type": data_type,
                "custom_field": True,
                "id": str(_ID_BASE + 900_000 + len(self.custom[module])),
            }
            return api

    def value(self, module: str, rid: str, field: str) -> Any:
        with self._lock:
            api = next(
                (a for a, f in self.custom[module].items() if field in (a, f["field_label"])),
                field,
            )
            return self.records[module][rid].get(api)

    def expire_tokens(self) -> None:
        """Every access token issued so far is refused from now on (401 INVALID_TOKEN)."""
        with self._lock:
            self.tokens = {t: 0.0 for t in self.tokens}

    def rate_limit(self, requests: int, retry_after: float | None) -> None:
        """Answer the next ``requests`` API calls with 429 (and this Retry-After)."""
        with self._lock:
            self._forced = [retry_after] * requests

    def fail(self, requests: int, status: int = 500, *, delay: float = 0.0) -> None:
        """The next ``requests`` API calls answer ``status`` (500 INTERNAL_ERROR), after
        ``delay`` seconds (status 0: answer normally, only late)."""
        with self._lock:
            self._faults = [(status, delay)] * requests

    def exhaust_daily(self) -> None:
        """The org's API credits for the last 24 hours are used up (429 until restored)."""
        with self._lock:
            self.daily_credits = 0

    def restore_daily(self, credits: int = 1_000_000) -> None:
        with self._lock:
            self.daily_credits = credits

    def write_calls(self) -> int:
        return sum(1 for m, p in self.calls if m == "PUT" and not p.startswith("/crm/v8/settings"))

    def credits_used(self) -> int:
        with self._lock:
            horizon = self.clock() - 86400
            return sum(c for t, c in self.spent if t > horizon)

    # ------------------------------------------------------------ requests
    def _module(self, request: web.Request) -> str | None:
        """The module named, if this org has it (else INVALID_MODULE, as for a disabled one)."""
        module = request.match_info.get("module") or request.query.get("module") or ""
        return module if module in self.modules else None

    def _since(self, request: web.Request) -> int | None:
        header = request.headers.get("If-Modified-Since")
        if header is None:
            return None
        return self._seconds(header)
