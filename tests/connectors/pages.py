"""Reading a source's pages in tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

from crm_pulse.connectors.protocols import Cursor, Page
from crm_pulse.metrics.events import Event


async def drain(pages: AsyncIterator[Page]) -> tuple[list[Event], Cursor | None]:
    """Every event of every page, and the cursor after the last page."""
    events: list[Event] = []
    cursor: Cursor | None = None
    async for page in pages:
        events.extend(page.events)
        cursor = page.cursor
    return events, cursor
