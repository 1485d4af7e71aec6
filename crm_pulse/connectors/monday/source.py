"""Pulling monday boards: ``items_page`` / ``next_items_page`` ordered by last update.

Each board is read with ``query_params`` ordering by the ``__last_updated__`` column ascending and,
once it has a mark, keeping items updated since the mark minus ``overlap``. The filter is sent
at day granularity (the form monday documents for its last-updated filter); items older than
the mark minus ``overlap`` are then dropped here, so a coarser server-side filter only costs a few
re-reads. Versions make re-reads harmless.

Cursors of ``items_page`` expire (60 minutes): on :class:`~.errors.CursorExpired` the read starts
again with a new ``items_page`` from the newest ``updated_at`` it had reached, so a long backfill
never starts over from the beginning.

Deletes and archives never show in ``items_page``. Webhooks announce them; as a safety net a
poll **reconciles ids** every ``reconcile_every``: it lists every active item id of the board
(ids only, a cheap query) and compares with the ids it has read; an id that is gone becomes a
delete, an id it never read (created or restored without a webhook) is read by id.

The cursor is ``{kind: {"t": ms, "ids": [item ids], "checked": ms}}`` per board kind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from .. import (
    BadRecord,
    Cursor,
    DataError,
    Event,
    Page,
    StartedReading,
    map_records,
    start_reading,
)
from .client import MondayClient
from .errors import CursorExpired
from .mapping import BoardColumns, MondayMapper
from .settings import BoardKind, MondaySettings

__all__ = ["MondaySource", "query_since"]

log = logging.getLogger("crm_pulse.monday")

RESTARTS = 5
"""Expired cursors tolerated in one pass before the error goes to the poller."""


def query_since(start_ms: int | None) -> dict[str, Any]:
    """``query_params`` of an ordered read of items updated on or after ``start_ms``'s day."""
    params: dict[str, Any] = {"order_by": [{"column_id": "__last_updated__", "direction": "asc"}]}
    if start_ms is not None:
        day = datetime.fromtimestamp(start_ms / 1000, UTC).strftime("%Y-%m-%d")
        params["rules"] = [
            {
                "column_id": "__last_updated__",
                "compare_value": ["EXACT", day],
                "operator": "greater_than_or_equals",
                "compare_attribute": "UPDATED_AT",
            }
        ]
    return params


class MondaySource:
    def __init__(
        self,
        client: MondayClient,
        mapper: MondayMapper,
        columns: BoardColumns,
        settings: MondaySettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.mapper = mapper
        self.columns = columns
        self.boards = settings.boards.configured()
        self.overlap_ms = int(settings.overlap * 1000)
        self.reconcile_ms = int(settings.reconcile_every * 1000)
        self.page_size = settings.page_size
        self.clock = clock
        since = settings.backfill_since
        self.backfill_from = (
            None
            if since is None
            else int(datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp() * 1000)
        )
        self.restarts = 0

    def _events(
        self, kind: BoardKind, items: Sequence[dict[str, Any]]
    ) -> tuple[list[Event], list[BadRecord]]:
        """Events of the items; the items that cannot be mapped set aside as BadRecords (the
        page reports them: skipped and quarantined, the others go on)."""
        return map_records(
            items,
            lambda item: [self.mapper.event(kind, item)],
            describe=lambda item: (kind, str(item.get("id") or "")),
        )

    def _version(self, item: dict[str, Any]) -> int | None:
        try:
            return self.mapper.version(item)
        except DataError:
            return None

    async def _run(self, cursor: Cursor | None, *, backfill: bool) -> AsyncIterator[Page]:
        current: dict[str, Any] = dict(cursor or {})
        for kind, board in self.boards:
            state = dict(current.get(kind) or {})
            t = state.get("t")
            if t is None:
                start = self.backfill_from
            else:
                start = max(0, int(t) - (0 if backfill else self.overlap_ms))
            known: set[str] = set(state.get("ids") or [])
            newest = int(t or 0)
            read_from = start  # items updated before it are dropped (the filter is by day)
            restarts = 0
            # the first page is asked for beside the board's columns (needed to map it, not
            # to ask for it): one round trip less a board
            reading: StartedReading[list[dict[str, Any]]] | None = start_reading(
                self.client.pages(board.id, self.page_size, query_since(read_from))
            )
            try:
                await self.columns.load(board.id)
                while True:
                    pages = reading or start_reading(
                        self.client.pages(board.id, self.page_size, query_since(read_from))
                    )
                    reading = None
                    try:
                        async with pages:
                            async for items in pages:
                                kept = [
                                    i
                                    for i in items
                                    if read_from is None
                                    or (self._version(i) or read_from) >= read_from
                                ]
                                events, bad = self._events(kind, kept)
                                for item in kept:
                                    newest = max(newest, self._version(item) or 0)
                                for e in events:
                                    (known.add if e.op == "upsert" else known.discard)(e.id)
                                state.update(t=newest, ids=sorted(known))
                                current = {**current, kind: dict(state)}
                                yield Page(events, current, skipped=bad)
                        break
                    except CursorExpired:
                        restarts += 1
                        self.restarts += 1
                        if restarts > RESTARTS:
                            raise
                        # start again from the newest updated_at reached, not from the beginning
                        read_from = newest if newest else start
                        log.info("monday cursor expired; reading again from the last updated_at")
            finally:
                if reading is not None:
                    await reading.aclose()
            now = int(self.clock() * 1000)
            if backfill:
                state.update(t=newest or state.get("t"), ids=sorted(known), checked=now)
                current = {**current, kind: dict(state)}
                yield Page([], current)
            elif now - int(state.get("checked") or 0) >= self.reconcile_ms:
                events, bad = await self._reconcile(kind, board.id, known, now)
                state.update(t=newest or state.get("t"), ids=sorted(known), checked=now)
                current = {**current, kind: dict(state)}
                yield Page(events, current, skipped=bad)
            else:
                current = {**current, kind: dict(state)}
                yield Page([], current)

    async def _reconcile(
        self, kind: BoardKind, board: str, known: set[str], now: int
    ) -> tuple[list[Event], list[BadRecord]]:
        """Deletes for ids gone from the board, upserts for ids never read. Versions are the
        reconciliation time: the change happened before it, after every version read."""
        active = set(await self.client.item_ids(board))
        events = [self.mapper.delete(kind, rid, now) for rid in sorted(known - active)]
        known.intersection_update(active)
        unseen = [
            item
            for item in await self.client.items(sorted(active - known))
            if str((item.get("board") or {}).get("id") or board) == board
        ]
        found, bad = map_records(
            unseen,
            lambda item: [
                self.mapper.event(kind, item, version=max(now, self._version(item) or 0))
            ],
            describe=lambda item: (kind, str(item.get("id") or "")),
        )
        known.update(e.id for e in found if e.op == "upsert")
        return events + found, bad

    def backfill(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._run(cursor, backfill=True)

    def poll(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._run(cursor, backfill=False)
