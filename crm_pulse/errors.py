"""Every error crm-pulse raises, grouped by what the caller should do about it.

```
CrmPulseError                  base of everything below; never raised itself
├── FatalError                 stop: the deployment cannot go on (bad credentials, lost state)
├── RetriableError             try again later; nothing is lost by waiting
│   └── RateLimited            the vendor said "slow down"; ``retry_after`` seconds if known
├── SkippableError             this one item cannot be processed; record it and go on
│   ├── DataError              an event or record is malformed (``where`` says which and where)
│   └── Unauthorized           a request failed authentication (forged, stale, replayed): 401
└── ConfigError                the configuration is wrong; ``problems`` lists every place
```

What happens to each, and who decides:

```
failure of ...                  raise / report                    the runtime then
a whole call, transient         RetriableError (RateLimited)      waits (crm_pulse.retry: backoff
                                                                  with jitter, or retry_after) and
                                                                  tries again; a write goes back
                                                                  to the outbox
a whole call, for good          FatalError                        stops and says why
one record a source read        BadRecord in Page.skipped         skips it, quarantines it with its
                                (crm_pulse.connectors)            reason, goes on with the page
one stored webhook or line      DataError (SkippableError)        keeps it with its reason, retries
one incoming request            Unauthorized / DataError          answers 401 / 400, stores nothing
the configuration               ConfigError                       refuses to start; lists every
                                                                  problem with file and line
```

Vendor exceptions are translated into these in one place per connector; callers only ever
catch the classes above. Messages never contain secrets: build them from names, never values
of credentials.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "CrmPulseError",
    "DataError",
    "FatalError",
    "RateLimited",
    "RetriableError",
    "SkippableError",
    "Unauthorized",
]


class CrmPulseError(Exception):
    """Base class of every crm-pulse error."""


class FatalError(CrmPulseError):
    """The process cannot continue; an operator must act."""


class RetriableError(CrmPulseError):
    """A transient failure: the same call may succeed later."""


class RateLimited(RetriableError):
    """The vendor refused the call for rate or budget reasons."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SkippableError(CrmPulseError):
    """One item failed; the caller records it (dead letter, error report) and goes on."""


class DataError(SkippableError):
    """Malformed input data: ``where`` names the place (for example ``line 12``)."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.reason = message
        self.where = where

    def item_problems(self) -> list[dict[str, object]]:
        """One mapping per bad item when the input held several (the ingress names each);
        empty when the message says it all."""
        return []


class Unauthorized(SkippableError):
    """A webhook or ingress request is not genuine; ``reason`` says why (never a secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in a configuration: where it is and why it is wrong."""

    path: str
    message: str
    file: str = ""
    line: int | None = None

    def __str__(self) -> str:
        place = self.file
        if self.line is not None:
            place = f"{place}:{self.line}" if place else f"line {self.line}"
        prefix = f"{place}: " if place else ""
        where = f"{self.path}: " if self.path else ""
        return f"{prefix}{where}{self.message}"


class ConfigError(CrmPulseError):
    """The configuration is invalid; ``problems`` lists every place that is wrong."""

    def __init__(self, problems: Sequence[ConfigProblem] | str) -> None:
        if isinstance(problems, str):
            problems = [ConfigProblem(path="", message=problems)]
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
