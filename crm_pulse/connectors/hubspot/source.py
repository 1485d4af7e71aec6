"""Pulling HubSpot through the CRM search API, with the cursor rules of the contracts.

Each object type is read in pages of 200, sorted by its last-modified property and then by
``hs_object_id``, with *keyset* paging: every page asks for records modified after the last one
seen, or at the same instant with a greater id. So records sharing a timestamp across a page
boundary are neither lost nor repeated, and no query ever pages past HubSpot's 10,000-result cap.

Search indexes changes late: each poll starts ``lookback`` before the cursor (re-reads are
harmless: versions). Archived records are listed separately and become deletes.

The cursor is plain data: ``{object_type: {"t": ms, "id": "123", "archived_t": ms}}``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ...config.models import HubSpotSettings
from ...errors import DataError
from ...metrics.events import Event
from ..protocols import Cursor, Page
from .client import HubSpotClient
from .mapping import OBJECTS, HubSpotMapper, to_ms

__all__ = ["HubSpotSource"]

log = logging.getLogger("crm_pulse.hubspot")

PAGE = 200


class HubSpotSource:
    def __init__(
        self, client: HubSpotClient, mapper: HubSpotMapper, settings: HubSpotSettings
    ) -> None:
        self.client = client
        self.mapper = mapper
        self.objects: Sequence[str] = settings.objects
        self.lookback_ms = int(settings.lookback * 1000)
        since = settings.backfill_since
        self.backfill_from_ms = 0 if since is None else to_ms(since.isoformat()) or 0
        self._pipelines_loaded = False
        self.skipped: list[str] = []

    async def _load_pipelines(self) -> None:
        if self._pipelines_loaded:
            return
        for object_type in ("deals", "tickets"):
            if object_type in self.objects:
                self.mapper.learn_pipelines(object_type, await self.client.pipelines(object_type))
        self._pipelines_loaded = True

    def _events(self, object_type: str, records: Sequence[dict[str, Any]]) -> list[Event]:
        events = []
        for record in records:
            try:
                events.append(self.mapper.event(object_type, record))
            except DataError as exc:  # reported, never silently dropped
                self.skipped.append(str(exc))
                log.warning("HubSpot record not mapped", extra={"reason": str(exc)})
        return events

    async def _scan(
        self, object_type: str, t: int, last_id: str | None, cursor: dict[str, Any]
    ) -> AsyncIterator[Page]:
        modified = OBJECTS[object_type].modified
        properties = self.mapper.properties(object_type)
        state = dict(cursor.get(object_type) or {})
        while True:
            if last_id is None:
                groups = [
                    {"filters": [{"propertyName": modified, "operator": "GTE", "value": str(t)}]}
                ]
            else:
                groups = [
                    {"filters": [{"propertyName": modified, "operator": "GT", "value": str(t)}]},
                    {
                        "filters": [
                            {"propertyName": modified, "operator": "EQ", "value": str(t)},
                            {"propertyName": "hs_object_id", "operator": "GT", "value": last_id},
                        ]
                    },
                ]
            body = {
                "filterGroups": groups,
                "sorts": [
                    {"propertyName": modified, "direction": "ASCENDING"},
                    {"propertyName": "hs_object_id", "direction": "ASCENDING"},
                ],
                "properties": properties,
                "limit": PAGE,
            }
            data = await self.client.search(object_type, body)
            results = data.get("results") or []
            if not results:
                return
            last = results[-1]
            t, last_id = self.mapper.version(object_type, last), str(last["id"])
            state.update(t=max(t, int(state.get("t", 0))), id=last_id)
            cursor = {**cursor, object_type: dict(state)}
            yield Page(self._events(object_type, results), cursor)
            if len(results) < PAGE:
                return

    async def _archived(self, object_type: str, cursor: dict[str, Any]) -> AsyncIterator[Page]:
        state = dict(cursor.get(object_type) or {})
        since = int(state.get("archived_t", 0)) - self.lookback_ms
        newest = int(state.get("archived_t", 0))
        after: str | None = None
        properties = [OBJECTS[object_type].modified]
        while True:
            data = await self.client.list_archived(object_type, after, properties)
            events = []
            for record in data.get("results") or []:
                at = to_ms(record.get("archivedAt")) or 0
                if at > since:
                    events.append(self.mapper.delete(object_type, record))
                    newest = max(newest, at)
            state["archived_t"] = newest
            cursor = {**cursor, object_type: dict(state)}
            after = ((data.get("paging") or {}).get("next") or {}).get("after")
            yield Page(events, cursor)
            if not after:
                return

    async def _run(self, cursor: Cursor | None, *, backfill: bool) -> AsyncIterator[Page]:
        await self._load_pipelines()
        current: dict[str, Any] = dict(cursor or {})
        for object_type in self.objects:
            state = current.get(object_type) or {}
            if backfill:
                start_t = int(state.get("t", self.backfill_from_ms))
                start_id = state.get("id")
            else:
                start_t = max(0, int(state.get("t", 0)) - self.lookback_ms)
                start_id = None
            async for page in self._scan(object_type, start_t, start_id, current):
                current = page.cursor
                yield page
            async for page in self._archived(object_type, current):
                current = page.cursor
                if page.events:
                    yield page
            yield Page([], current)

    def backfill(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._run(cursor, backfill=True)

    def poll(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._run(cursor, backfill=False)
