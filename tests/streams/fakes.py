"""In-test connector parts: a scripted sink and a list-backed source."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from crm_pulse.connectors.protocols import Cursor, FieldWrite, Page, WriteResult
from crm_pulse.metrics.events import Event


class ScriptedSink:
    """Records calls; ``script`` decides each call's fate (None: all written)."""

    def __init__(
        self,
        max_batch: int = 100,
        script: Callable[[int, Sequence[FieldWrite]], list[WriteResult] | Exception | None]
        | None = None,
    ) -> None:
        self.max_batch = max_batch
        self.rounds_in_flight = 1
        self.script = script
        self.calls: list[list[FieldWrite]] = []
        self.values: dict[tuple[str, str, str], Any] = {}

    async def write(self, writes: Sequence[FieldWrite]) -> list[WriteResult]:
        assert len(writes) <= self.max_batch
        self.calls.append(list(writes))
        outcome = self.script(len(self.calls), writes) if self.script else None
        if isinstance(outcome, Exception):
            raise outcome
        results = outcome or [WriteResult(w, ok=True) for w in writes]
        for r in results:
            if r.ok:
                self.values[(r.write.object, r.write.record_id, r.write.field)] = r.write.value
        return results


class ListSource:
    """A source over a list of events, in pages; the cursor is the position."""

    def __init__(self, events: list[Event], page: int = 10) -> None:
        self.events = events
        self.page = page
        self.fail_after_pages: int | None = None

    async def _pages(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        pos = int((cursor or {}).get("pos", 0))
        served = 0
        while pos < len(self.events):
            if self.fail_after_pages is not None and served >= self.fail_after_pages:
                raise ConnectionError("connection reset by the test")
            chunk = self.events[pos : pos + self.page]
            pos += len(chunk)
            served += 1
            yield Page(chunk, {"pos": pos})

    def backfill(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._pages(cursor)

    def poll(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._pages(cursor)
