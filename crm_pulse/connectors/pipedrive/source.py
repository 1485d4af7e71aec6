"""Pulling Pipedrive: ``updated_since`` + ``sort_by=update_time`` over v2 lists, cursor paging.

Each entity is read from its update-time cursor minus ``overlap`` (equal update times and late
commits are caught by the re-read; versions make re-reads harmless). Deals are also read from
``/api/v2/deals/archived`` (archived deals still count) and with ``status=deleted`` (deletes).
The cursor is ``{entity: {"t": ms}}``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from ...config.models import PipedriveSettings
from ...errors import DataError
from ...metrics.events import Event
from ..protocols import Cursor, Page
from .client import PipedriveClient
from .mapping import FieldKeys, PipedriveMapper

__all__ = ["PipedriveSource"]

log = logging.getLogger("crm_pulse.pipedrive")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PipedriveSource:
    def __init__(
        self,
        client: PipedriveClient,
        mapper: PipedriveMapper,
        keys: FieldKeys,
        settings: PipedriveSettings,
    ) -> None:
        self.client = client
        self.mapper = mapper
        self.keys = keys
        self.entities: Sequence[str] = settings.objects
        self.overlap_ms = int(settings.overlap * 1000)
        since = settings.backfill_since
        self.backfill_from = (
            None
            if since is None
            else int(datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp() * 1000)
        )
        self.skipped: list[str] = []

    def _events(self, entity: str, records: Sequence[dict[str, Any]]) -> list[Event]:
        out = []
        for r in records:
            try:
                out.append(self.mapper.event(entity, r))
            except DataError as exc:
                self.skipped.append(str(exc))
                log.warning("Pipedrive record not mapped", extra={"reason": str(exc)})
        return out

    async def _organizations(self, records: Sequence[dict[str, Any]]) -> list[Event]:
        out = []
        for r in records:
            try:
                out.append(await self.mapper.organization_event(self.client, r))
            except DataError as exc:
                self.skipped.append(str(exc))
                log.warning("Pipedrive record not mapped", extra={"reason": str(exc)})
        return out

    async def _run(self, cursor: Cursor | None, *, backfill: bool) -> AsyncIterator[Page]:
        current: dict[str, Any] = dict(cursor or {})
        touched: set[str] = set()  # organizations whose deals changed in this pass
        derive = "organizations" in self.entities and self.mapper.derives_customer_since
        for entity in self.entities:
            await self.keys.load(entity)
            state = dict(current.get(entity) or {})
            t = state.get("t")
            if t is None:
                start = self.backfill_from
            else:
                start = int(t) - (0 if backfill else self.overlap_ms)
            params: dict[str, Any] = {"sort_by": "update_time", "sort_direction": "asc"}
            if start is not None:
                params["updated_since"] = _iso(max(0, start))
            paths: list[tuple[str, dict[str, Any]]] = [(f"/api/v2/{entity}", params)]
            if entity == "deals":
                paths.append(("/api/v2/deals/archived", params))
                paths.append(("/api/v2/deals", {**params, "status": "deleted"}))
            newest = int(t or 0)
            for path, query in paths:
                async for records in self.client.pages(path, query):
                    for r in records:
                        with contextlib.suppress(DataError):
                            newest = max(newest, self.mapper.version(r))
                    state["t"] = newest
                    current = {**current, entity: dict(state)}
                    if entity == "deals" and derive:
                        touched.update(str(r["org_id"]) for r in records if r.get("org_id"))
                    if entity == "organizations" and derive:
                        touched.difference_update(str(r.get("id")) for r in records)
                        yield Page(await self._organizations(records), current)
                    else:
                        yield Page(self._events(entity, records), current)
            if entity == "organizations" and derive and touched:
                # a deal won (or lost, or deleted) changes when its organization became a customer
                orgs = [o for o in (await self._fetch_orgs(sorted(touched))) if o is not None]
                touched.clear()
                yield Page(await self._organizations(orgs), current)
            state["t"] = newest
            current = {**current, entity: dict(state)}
            yield Page([], current)

    async def _fetch_orgs(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        return [await self.client.get("organizations", i) for i in ids]

    def backfill(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._run(cursor, backfill=True)

    def poll(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._run(cursor, backfill=False)
