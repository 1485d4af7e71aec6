"""The company account's state and the changes a test or the sandbox makes to it."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .model import (
    _DEFAULTS,
    _ENTITIES,
    _STANDARD_FIELDS,
    BASE_TOKENS,
    PLANS,
    _iso,
    _seconds,
    _v1_time,
)


class _Account:
    """Records, users, fields, limits and faults of one company account, and the
    changes tests make to them (under one lock: tests change it while the server serves it)."""

    def __init__(
        self,
        token: str = "pd-test-token",
        *,
        clock: Callable[[], float] = time.time,
        plan: str = "growth",
        seats: int = 5,
        burst: int | None = None,
        webhook_user: str = "crm-pulse",
        webhook_password: str = "pd-hook-pass",
        currency: str = "EUR",
    ) -> None:
        self.token = token
        self.clock = clock
        plan_burst, multiplier = PLANS[plan]
        self.burst = plan_burst if burst is None else burst
        """Requests per token in a rolling 2-second window (``x-ratelimit-limit``)."""
        self.daily_budget = BASE_TOKENS * multiplier * seats
        """Tokens the company may spend per day (its midnight resets them)."""
        self.webhook_user = webhook_user
        self.webhook_password = webhook_password
        self.currency = currency
        """The company's default currency (``GET /v1/users/me``: ``default_currency``)."""
        self.records: dict[str, dict[str, dict[str, Any]]] = {e: {} for e in _ENTITIES}
        self.users: dict[int, dict[str, Any]] = {}
        """The company's users as ``GET /v1/users`` answers them (v1 fields, ``YYYY-MM-DD
        HH:MM:SS`` times; API v2 has no users list)."""
        self.missing_scopes: set[str] = set()
        """OAuth scopes the app lacks (``users:read``: ``GET /v1/users`` answers 403)."""
        self.fields: dict[str, dict[str, dict[str, Any]]] = {e: {} for e in _ENTITIES}
        self.calls: list[tuple[str, str]] = []
        self._requests: list[float] = []
        self._forced: list[float] = []
        self.faults: list[tuple[int, float]] = []
        """Injected failures for the next calls: (status or 0, delay seconds)."""
        self._lock = threading.RLock()
        self._next = 100
        self.tokens_spent = 0
        """Tokens spent today (all calls, whatever their outcome but 429)."""
        for entity, standard in _STANDARD_FIELDS.items():
            for key, field_type in standard:
                self.fields[entity][key] = {
                    "key": key,
                    "name": key.replace("_", " ").capitalize(),
                    "field_type": field_type,
                    "edit_flag": False,
                    "options": None,
                }

    @property
    def daily_left(self) -> int:
        return max(0, self.daily_budget - self.tokens_spent)

    # ------------------------------------------------------------ changing the account
    def _stamp(self, record: dict[str, Any], at: int | None) -> None:
        last = _seconds(record["update_time"]) if record.get("update_time") else 0
        now = at if at is not None else max(int(self.clock()), last + 1)
        record["update_time"] = _iso(now)

    def add_field(
        self, entity: str, name: str, field_type: str = "double", options: list[str] | None = None
    ) -> str:
        with self._lock:
            key = hashlib.sha1(f"{entity}:{name}:{self.token}".encode()).hexdigest()
            self.fields[entity][key] = {
                "key": key,
                "name": name,
                "field_type": field_type,
                "edit_flag": True,
                "custom": True,
                "options": [{"id": i + 1, "label": label} for i, label in enumerate(options or [])]
                or None,
            }
            return key

    def create(self, entity: str, data: Mapping[str, Any], *, at: int | None = None) -> str:
        with self._lock:
            self._next += 1
            rid = str(self._next)
            record: dict[str, Any] = {
                "id": int(rid),
                "add_time": _iso(at or int(self.clock())),
                "custom_fields": {},
                "is_deleted": False,
            }
            record.update(_DEFAULTS[entity])  # API v2 lists every standard field, null or not
            if entity == "deals":
                record.update(status="open", is_archived=False, currency=self.currency)
            record.update(data)
            self._stamp(record, at)
            self.records[entity][rid] = record
            return rid

    def add_user(
        self, email: str, name: str = "", *, user_id: int | None = None, at: int | None = None
    ) -> int:
        """A user of the company (``at``: when it was added, epoch seconds)."""
        with self._lock:
            uid = user_id if user_id is not None else 1000 + len(self.users)
            when = _v1_time(at if at is not None else int(self.clock()))
            self.users[uid] = {
                "id": uid,
                "name": name or email,
                "email": email,
                "lang": 1,
                "locale": "en_US",
                "timezone_name": "Europe/Tallinn",
                "timezone_offset": "+02:00",
                "default_currency": self.currency,
                "icon_url": None,
                "active_flag": True,
                "is_deleted": False,
                "is_admin": 0,
                "role_id": 1,
                "created": when,
                "modified": when,
                "has_created_company": False,
                "access": [{"app": "sales", "admin": False, "permission_set_id": "1"}],
                "activated": True,
                "last_login": when,
                "phone": None,
                "is_you": False,
            }
            return uid

    def deactivate_user(self, uid: int, *, touch: bool = True) -> None:
        """An admin deactivates the user (``active_flag: false``); ``touch=False`` leaves
        ``modified`` as it was."""
        with self._lock:
            user = self.users[uid]
            user["active_flag"] = False
            if touch:
                last = _seconds(user["modified"].replace(" ", "T") + "Z")
                user["modified"] = _v1_time(max(int(self.clock()), last + 1))

    def update(
        self,
        entity: str,
        rid: str,
        data: Mapping[str, Any],
        *,
        custom: Mapping[str, Any] | None = None,
    ) -> None:
        with self._lock:
            record = self.records[entity][rid]
            record.update(data)
            record["custom_fields"].update(custom or {})
            self._stamp(record, None)

    def delete(self, entity: str, rid: str) -> None:
        with self._lock:
            record = self.records[entity][rid]
            record["is_deleted"] = True
            if entity == "deals":
                record["status"] = "deleted"
            self._stamp(record, None)
            record["_deleted_at"] = _seconds(record["update_time"])

    def custom_value(self, entity: str, rid: str, name: str) -> Any:
        with self._lock:
            key = next(
                (k for k, f in self.fields[entity].items() if f["name"] == name or k == name), None
            )
            return None if key is None else self.records[entity][rid]["custom_fields"].get(key)

    def archive(self, rid: str) -> None:
        """Archive a deal (it leaves ``/api/v2/deals`` for ``/api/v2/deals/archived``)."""
        self.update("deals", rid, {"is_archived": True})

    def rate_limit(self, requests: int, retry_after: float) -> None:
        """Answer the next ``requests`` calls with the burst limit's 429 and this Retry-After."""
        with self._lock:
            self._forced = [retry_after] * requests

    def exhaust_daily(self) -> None:
        """Spend the company's whole daily token budget: every call answers 429 until
        :meth:`reset_daily` (Pipedrive: the next day)."""
        with self._lock:
            self.tokens_spent = self.daily_budget

    def reset_daily(self) -> None:
        with self._lock:
            self.tokens_spent = 0

    def fail(self, requests: int, status: int = 502, *, delay: float = 0.0) -> None:
        """The next ``requests`` calls answer ``status`` after ``delay`` seconds
        (``status=0``: only the delay, a slow answer for client timeouts)."""
        with self._lock:
            self.faults = [(status, delay)] * requests

    def write_calls(self) -> int:
        return sum(1 for m, p in self.calls if m == "PATCH")
