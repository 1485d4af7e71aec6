"""Pulling deals: keyset paging on (updated_at, id), so records sharing a time across a page
boundary are neither lost nor read twice; deleted deals come back as tombstones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time

from crm_pulse.connectors import Cursor, Page, map_records

from .client import TinyCrmClient
from .mapping import deal_event


class TinyCrmSource:
    def __init__(self, client: TinyCrmClient, name: str, since_ms: int = 0) -> None:
        self.client = client
        self.name = name
        self.since_ms = since_ms

    async def _pages(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        since = int((cursor or {}).get("since", self.since_ms))
        after = str((cursor or {}).get("after", ""))
        while True:
            data = await self.client.request(
                "GET", "/v1/deals", params={"since": since, "after": after, "limit": 200}
            )
            records = list(data.get("data") or [])
            events, bad = map_records(
                records,
                lambda r: [deal_event(self.name, r)],
                describe=lambda r: ("deals", str(r.get("id", ""))),
            )
            if records:
                since, after = int(records[-1]["updated_at"]), str(records[-1]["id"])
            yield Page(events, {"since": since, "after": after}, skipped=bad)
            if not data.get("has_more"):
                return

    def backfill(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._pages(cursor)

    def poll(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._pages(cursor)


def start_of(day: date | None) -> int:
    """Milliseconds at the start of a date (for ``backfill_since``)."""
    if day is None:
        return 0
    return int(datetime.combine(day, time(), UTC).timestamp() * 1000)
