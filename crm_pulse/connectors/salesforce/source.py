"""Pulling Salesforce with SOQL on ``SystemModstamp, Id``, with an overlap window.

Each sObject is read with ``ORDER BY SystemModstamp, Id`` from its cursor minus ``overlap``
(equal timestamps and late commits are caught by the re-read; versions make it harmless),
following ``nextRecordsUrl`` page by page so the cursor is committed with each page. Deleted
rows come from ``queryAll`` with ``IsDeleted = true``; an undeleted record comes back as an
upsert with a newer ``SystemModstamp``. The cursor is ``{sObject: {"t": ms}}``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from ...config.models import SalesforceSettings
from ...errors import DataError
from ...metrics.events import Event
from ..protocols import Cursor, Page
from .client import SalesforceClient
from .mapping import SalesforceMapper

__all__ = ["SalesforceSource", "soql_time"]

log = logging.getLogger("crm_pulse.salesforce")


def soql_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SalesforceSource:
    def __init__(
        self, client: SalesforceClient, mapper: SalesforceMapper, settings: SalesforceSettings
    ) -> None:
        self.client = client
        self.mapper = mapper
        objects: list[str] = list(settings.objects)
        if settings.mapping.survey_object:
            objects.append(settings.mapping.survey_object)
        if settings.forecasting_quotas:
            objects.append("ForecastingQuota")
        self.objects: Sequence[str] = objects
        self.overlap_ms = int(settings.overlap * 1000)
        since = settings.backfill_since
        self.backfill_from = (
            None
            if since is None
            else int(datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp() * 1000)
        )
        self.skipped: list[str] = []

    def _events(self, sobject: str, records: Sequence[dict[str, Any]]) -> list[Event]:
        out = []
        for r in records:
            try:
                out.append(self.mapper.event(sobject, r))
            except DataError as exc:
                self.skipped.append(str(exc))
                log.warning("Salesforce record not mapped", extra={"reason": str(exc)})
        return out

    async def _pages(
        self, soql: str, *, include_deleted: bool = False
    ) -> AsyncIterator[list[dict[str, Any]]]:
        data = await self.client.query(soql, include_deleted=include_deleted)
        while True:
            yield list(data.get("records") or [])
            next_url = data.get("nextRecordsUrl")
            if data.get("done", True) or not next_url:
                return
            data = await self.client.query_more(str(next_url))

    async def _run(self, cursor: Cursor | None, *, backfill: bool) -> AsyncIterator[Page]:
        current: dict[str, Any] = dict(cursor or {})
        for sobject in self.objects:
            state = dict(current.get(sobject) or {})
            t = state.get("t")
            start = (
                self.backfill_from if t is None else int(t) - (0 if backfill else self.overlap_ms)
            )
            where = "" if start is None else f" WHERE SystemModstamp >= {soql_time(max(0, start))}"
            fields = ", ".join(self.mapper.soql_fields(sobject))
            newest = int(t or 0)
            queries = [
                (f"SELECT {fields} FROM {sobject}{where} ORDER BY SystemModstamp, Id", False)
            ]
            deleted = " AND ".join(
                x for x in ("IsDeleted = true", where.removeprefix(" WHERE ")) if x
            )
            queries.append(
                (
                    f"SELECT Id, SystemModstamp, IsDeleted FROM {sobject} WHERE {deleted} ORDER BY SystemModstamp, Id",
                    True,
                )
            )
            for soql, include_deleted in queries:
                async for records in self._pages(soql, include_deleted=include_deleted):
                    for r in records:
                        try:
                            newest = max(newest, self.mapper.version(r))
                        except DataError:
                            continue
                    state["t"] = newest
                    current = {**current, sobject: dict(state)}
                    yield Page(self._events(sobject, records), current)
        yield Page([], current)

    def backfill(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._run(cursor, backfill=True)

    def poll(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._run(cursor, backfill=False)
