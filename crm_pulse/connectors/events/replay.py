"""Remembering accepted signatures for the tolerance window, in bounded memory."""

from __future__ import annotations

import heapq
import threading

__all__ = ["ReplayGuard"]


class ReplayGuard:
    """Signatures accepted within the last ``window`` seconds.

    A signature older than the window needs no memory: its timestamp alone gets it refused.
    When ``capacity`` is reached the oldest entries are dropped and ``floor`` rises to their
    timestamp; requests signed at or before ``floor`` are then refused, so dropping an entry
    never lets its replay through (at worst a sender lagging far behind is refused).
    """

    def __init__(self, window: float, capacity: int = 200_000) -> None:
        self.window = window
        self.capacity = capacity
        self.floor = -1
        self._seen: dict[bytes, int] = {}
        self._heap: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def _prune(self, now: float) -> None:
        horizon = now - self.window
        heap, seen = self._heap, self._seen
        while heap and heap[0][0] < horizon:
            ts, sig = heapq.heappop(heap)
            if seen.get(sig) == ts:
                del seen[sig]

    def check_and_remember(self, sig: bytes, timestamp: int, now: float) -> str | None:
        """Remember ``sig``; the reason to refuse it, or None when it is new."""
        with self._lock:
            if timestamp <= self.floor:
                return (
                    "timestamp is older than the replay memory reaches; sign with the current time"
                )
            if sig in self._seen:
                return "replayed request: this signature was already accepted"
            self._prune(now)
            while len(self._seen) >= self.capacity and self._heap:
                ts, old = heapq.heappop(self._heap)
                if self._seen.get(old) == ts:
                    del self._seen[old]
                    self.floor = max(self.floor, ts)
            self._seen[sig] = timestamp
            heapq.heappush(self._heap, (timestamp, sig))
            return None

    def forget(self, sig: bytes) -> None:
        """Let ``sig`` be accepted again (its request was not stored: the sender will retry)."""
        with self._lock:
            self._seen.pop(sig, None)
