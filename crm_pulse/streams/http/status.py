"""The shape of ``GET /status``: what the runtime reports about itself.

The runtime builds a :class:`Status` in its ``status()`` callable; the server serves
:meth:`Status.to_dict` as JSON after redacting registered secrets from every string (error
messages from vendor libraries may quote anything). Times are ISO 8601 UTC strings.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..logs import redact, redact_data

__all__ = [
    "ConnectorStatus",
    "ErrorEntry",
    "LogStatus",
    "OutboxStatus",
    "RecentErrors",
    "Status",
    "StatusSource",
    "utc_now_iso",
]


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ErrorEntry:
    """One recent error: when, where (connector name or component), what."""

    at: str
    where: str
    message: str
    kind: str = ""


@dataclass(frozen=True)
class ConnectorStatus:
    name: str
    kind: str
    cursor: dict[str, Any] | None = None
    """The source's stored cursor (JSON data), None for receive-only connectors."""
    lag_seconds: float | None = None
    """Now minus the time of the newest change seen (cursor or event); None if unknown."""
    events_total: int = 0
    last_event_at: str | None = None
    last_poll_at: str | None = None
    last_error: ErrorEntry | None = None


@dataclass(frozen=True)
class LogStatus:
    """The event log: highest offset appended and consumed (embedded runtime)."""

    appended: int = 0
    consumed: int = 0

    @property
    def lag(self) -> int:
        return self.appended - self.consumed


@dataclass(frozen=True)
class OutboxStatus:
    depth: int = 0
    """Field writes waiting to be sent."""
    dead_letters: int = 0
    oldest_age_seconds: float | None = None
    writes_total: int = 0


@dataclass(frozen=True)
class Status:
    healthy: bool
    runtime: str = "embedded"
    started_at: str | None = None
    uptime_seconds: float = 0.0
    events_per_second: float = 0.0
    log: LogStatus | None = None
    connectors: list[ConnectorStatus] = field(default_factory=list)
    outbox: OutboxStatus = field(default_factory=OutboxStatus)
    last_errors: list[ErrorEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Why the runtime is not healthy (empty when healthy)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, with registered secrets redacted."""
        data = asdict(self)
        if self.log is not None:
            data["log"]["lag"] = self.log.lag
        result: dict[str, Any] = redact_data(data)
        return result


StatusSource = Callable[[], "Status | Awaitable[Status]"]
"""What ``build_app`` takes: a function (plain or async) returning the current Status."""


class RecentErrors:
    """The last ``size`` errors, for ``Status.last_errors`` (messages redacted on entry)."""

    def __init__(self, size: int = 20) -> None:
        self._entries: deque[ErrorEntry] = deque(maxlen=size)

    def add(self, where: str, error: BaseException | str) -> ErrorEntry:
        if isinstance(error, BaseException):
            entry = ErrorEntry(utc_now_iso(), where, redact(str(error)), type(error).__name__)
        else:
            entry = ErrorEntry(utc_now_iso(), where, redact(error))
        self._entries.append(entry)
        return entry

    def entries(self) -> list[ErrorEntry]:
        return list(self._entries)

    def last(self, where: str) -> ErrorEntry | None:
        for entry in reversed(self._entries):
            if entry.where == where:
                return entry
        return None
