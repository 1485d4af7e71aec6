"""The account's state and the changes a test or the sandbox makes to it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .errors import _complexity_error, _Refusal
from .model import (
    BUDGET,
    CURSOR_TTL,
    TEMPLATES,
    _iso,
    _seconds,
    _until_midnight,
)


class _Account:
    """Boards, items, webhooks, limits and faults of one account, and the changes tests make
    to them (under one lock: tests change it while the server serves it)."""

    def __init__(
        self,
        token: str = "monday-test-token",
        *,
        clock: Callable[[], float] = time.time,
        signing_secret: str | None = None,
        budget: int = BUDGET,
        account_id: int = 4242,
    ) -> None:
        self.token = token
        self.clock = clock
        self.signing_secret = signing_secret
        self.budget = budget
        self.account_id = account_id
        self.boards: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.versions: list[str | None] = []
        self._cursors: dict[str, tuple[list[str], int, float]] = {}
        self._spent: list[tuple[float, int]] = []
        self._forced: list[tuple[str, float]] = []
        self.faults: list[tuple[int, float]] = []
        """Injected failures for the next calls: (5xx status or 0, delay seconds)."""
        self.daily_until: float | None = None
        """While set and not reached: the daily call limit is used up."""
        self.complexity_refusals = 0
        """Calls refused because the complexity budget of the last minute was spent."""
        self._lock = threading.RLock()
        self._next = 5_000_000_000

    # ------------------------------------------------------------ changing the account
    def _id(self) -> str:
        self._next += 1
        return str(self._next)

    def add_board(self, name: str, template: str | None = None) -> str:
        """A board, with the columns of a monday CRM template (deals, accounts, contacts,
        activities) when one is named."""
        with self._lock:
            bid = str(1_000_000 + len(self.boards) + 1)
            self.boards[bid] = {"id": bid, "name": name, "columns": [], "items": []}
            for title, kind, labels in TEMPLATES.get(template or "", []):
                self.add_column(bid, title, kind, labels)
            return bid

    def add_column(
        self, board: str, title: str, kind: str = "numbers", labels: list[str] | None = None
    ) -> str:
        with self._lock:
            columns = self.boards[board]["columns"]
            base = kind.replace("board_relation", "connect_boards")[:12]
            cid = f"{base}_{len(columns) + 1}"
            settings: dict[str, Any] = {}
            if labels:
                settings["labels"] = {str(i): label for i, label in enumerate(labels)}
            columns.append({"id": cid, "title": title, "type": kind, "settings": settings})
            return cid

    def column(self, board: str, title: str) -> dict[str, Any]:
        for c in self.boards[board]["columns"]:
            if c["title"] == title or c["id"] == title:
                return dict(c)
        raise KeyError(f"no column {title!r} on board {board}")

    def _raw(self, column: dict[str, Any], value: Any, now: str) -> Any:
        """monday's raw JSON for a simple value given by a test (None clears)."""
        if value is None or value == "":
            return None
        kind = column["type"]
        if kind == "status":
            labels = {v: int(k) for k, v in column["settings"].get("labels", {}).items()}
            if value not in labels:
                raise KeyError(f"no label {value!r} on {column['title']}")
            return {"index": labels[value], "post_id": None, "changed_at": now}
        if kind == "numbers":
            return str(value)
        if kind == "people":
            return {"personsAndTeams": [{"id": int(value), "kind": "person"}], "changed_at": now}
        if kind == "date":
            text = str(value).replace(" ", "T")
            day, _, at = text.partition("T")
            return {"date": day, "time": at.rstrip("Z") or None, "changed_at": now}
        if kind == "board_relation":
            ids = value if isinstance(value, list) else [value]
            return {"linkedPulseIds": [{"linkedPulseId": int(i)} for i in ids]}
        if kind == "email":
            return {"email": str(value), "text": str(value)}
        return str(value)

    def _stamp(self, item: dict[str, Any], at: int | None) -> None:
        last = _seconds(item["updated_at"]) if item.get("updated_at") else 0
        now = at if at is not None else max(int(self.clock()), last + 1)
        item["updated_at"] = _iso(now)

    def create_item(
        self,
        board: str,
        name: str,
        values: Mapping[str, Any] | None = None,
        *,
        at: int | None = None,
    ) -> str:
        """An item; ``values`` by column title in simple forms (a status label, a number, a
        user id, "YYYY-MM-DD[THH:MM:SS]", linked item ids, an e-mail address, text)."""
        with self._lock:
            rid = self._id()
            now = _iso(at if at is not None else self.clock())
            item: dict[str, Any] = {
                "id": rid,
                "name": name,
                "board": board,
                "state": "active",
                "created_at": now,
                "values": {},
            }
            for title, value in (values or {}).items():
                column = self.column(board, title)
                item["values"][column["id"]] = self._raw(column, value, now)
            self._stamp(item, at)
            self.items[rid] = item
            self.boards[board]["items"].append(rid)
            return rid

    def update_item(self, rid: str, values: Mapping[str, Any], *, at: int | None = None) -> None:
        with self._lock:
            item = self.items[rid]
            self._stamp(item, at)
            for title, value in values.items():
                column = self.column(item["board"], title)
                item["values"][column["id"]] = self._raw(column, value, item["updated_at"])

    def set_state(self, rid: str, state: str) -> None:
        """``deleted``, ``archived`` or ``active`` (a restore)."""
        with self._lock:
            self.items[rid]["state"] = state
            self._stamp(self.items[rid], None)

    def delete_item(self, rid: str) -> None:
        self.set_state(rid, "deleted")

    def value(self, rid: str, title: str) -> Any:
        """A column's raw value (a numbers column: its number as text)."""
        with self._lock:
            item = self.items[rid]
            column = self.column(item["board"], title)
            return item["values"].get(column["id"])

    def rate_limit(self, requests: int, retry_after: float) -> None:
        """The next ``requests`` calls get HTTP 429 (minute limit) with this Retry-After."""
        with self._lock:
            self._forced = [("rate", retry_after)] * requests

    def exhaust_complexity(self, requests: int, retry_in: float) -> None:
        """The next ``requests`` calls meet the complexity-budget error of their API version,
        saying to retry in ``retry_in`` seconds (whole seconds, as monday counts them)."""
        with self._lock:
            self._forced = [("complexity", retry_in)] * requests

    def exhaust_daily(self, until: float | None = None) -> None:
        """The account's daily call limit is used up: every call answers
        ``DAILY_LIMIT_EXCEEDED`` until ``until`` (a Unix time; default the next midnight UTC,
        when monday resets it) or :meth:`reset_daily`."""
        with self._lock:
            self.daily_until = until if until is not None else _until_midnight(self.clock())

    def reset_daily(self) -> None:
        with self._lock:
            self.daily_until = None

    def fail(self, requests: int, status: int = 500, *, delay: float = 0.0) -> None:
        """The next ``requests`` calls answer ``status`` (a 5xx) after ``delay`` seconds
        (``status=0``: only the delay, then the real answer: a slow answer for timeouts)."""
        with self._lock:
            self.faults = [(status, delay)] * requests

    def expire_cursors(self) -> None:
        """Every cursor handed out so far is now older than 60 minutes."""
        with self._lock:
            self._cursors = {
                k: (ids, off, issued - CURSOR_TTL - 1)
                for k, (ids, off, issued) in self._cursors.items()
            }

    def write_calls(self) -> int:
        return sum(1 for c in self.calls if c == "change_multiple_column_values")

    def _charge(self, cost: int) -> None:
        now = self.clock()
        self._spent = [(t, c) for t, c in self._spent if t > now - 60]
        used = sum(c for _, c in self._spent)
        if used + cost > self.budget:
            self.complexity_refusals += 1
            wait = max(1, int(self._spent[0][0] + 60 - now) + 1) if self._spent else 60
            raise _Refusal(200, _complexity_error(wait, cost, self.budget - used, self.budget))
        self._spent.append((now, cost))
