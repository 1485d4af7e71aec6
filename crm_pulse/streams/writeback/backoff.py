"""Retry delays: exponential backoff with jitter, and the vendor's Retry-After when it gave one."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """``initial * 2**(attempt-1)`` capped at ``maximum``, with "equal jitter" (half fixed, half
    random) so that many failed writes do not all come back at the same instant."""

    def __init__(
        self, initial: float, maximum: float, attempts: int, rng: random.Random | None = None
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempts = attempts
        self._rng = rng or random.Random()

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` >= 1 failures so far)."""
        if retry_after is not None and retry_after >= 0:
            return retry_after
        base = min(self.maximum, self.initial * 2.0 ** max(0, attempt - 1))
        return base / 2 + self._rng.uniform(0, base / 2)

    def exhausted(self, attempt: int) -> bool:
        """True when ``attempt`` failures are all the retries allowed."""
        return attempt >= self.attempts
