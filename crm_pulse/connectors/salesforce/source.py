"""Pulling Salesforce with SOQL on ``SystemModstamp``, with the cursor rules of the contracts.

Every sObject is read with ``SELECT ... WHERE SystemModstamp >= <t> ORDER BY SystemModstamp, Id``
through ``query_all_iter`` (which follows ``nextRecordsUrl``), in pages of up to 2,000 records.

* **Backfill** resumes exactly: the cursor keeps the last (SystemModstamp, Id) read, the query
  starts at that second (SOQL time literals have no fraction) and the records up to and
  including the cursor are skipped. Records sharing a timestamp across a page boundary are
  neither lost nor repeated.
* **Poll** re-reads ``overlap`` seconds before the cursor (late commits: a transaction that
  commits after a later one shows an older SystemModstamp). Re-reads are harmless: versions.
* **Deletes**: ``queryAll`` with ``IsDeleted = true`` since the last delete seen (minus the
  overlap) become delete events with the deletion's SystemModstamp as version. Salesforce keeps
  deleted rows in the recycle bin for 15 days: a poller stopped longer misses deletes (a new
  backfill and a rebuild are then needed). An undeleted record has a new SystemModstamp and comes
  back as an upsert with a greater version.
* Tasks and Events older than a year are archived by Salesforce and hidden from ``query``:
  they are read with ``queryAll`` and ``IsDeleted = false``.

* A **first backfill** of an object holding more than ``bulk_threshold`` records (counted with
  ``SELECT COUNT()``) runs as one Bulk API 2.0 query job instead: CSV pages of 50,000 rows, a
  handful of API calls instead of one per 2,000 records.

Calls that do not depend on each other are made side by side (Salesforce limits API calls per
24 h and long-running requests in flight, not short calls in flight): the API user and the
fiscal periods are read while the first page is on its way, the ``COUNT()`` goes beside the
first page (which is dropped, unread, when the count calls for the Bulk API), and each object's
deleted rows are queried beside the scan of its live ones. What is handed out, and in which
order, stays the same: the pages of the scan, then the deletes, the cursor moving as before.

The cursor is plain data: ``{sObject: {"t": ms, "id": "006...", "deleted_t": ms}}``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from ...errors import DataError
from ...metrics.events import Event
from ..protocols import BadRecord, Cursor, Page
from ..readahead import start_reading
from .client import SalesforceClient
from .mapping import MODSTAMP, SalesforceMapper, format_soql_time, to_ms
from .settings import SalesforceSettings

__all__ = ["SalesforceSource"]

log = logging.getLogger("crm_pulse.salesforce")

"""How many of the latest unmapped records are kept for inspection (each is also logged)."""

CHUNK = 2000
BULK_THRESHOLD = 100_000
ARCHIVING = frozenset({"Task", "Event"})
"""Objects whose old rows Salesforce archives (IsArchived): ``query`` hides them, ``queryAll``
with ``IsDeleted = false`` reads them."""


class SalesforceSource:
    def __init__(
        self, client: SalesforceClient, mapper: SalesforceMapper, settings: SalesforceSettings
    ) -> None:
        self.client = client
        self.mapper = mapper
        self.overlap_ms = int(settings.overlap * 1000)
        since = settings.backfill_since
        self.backfill_from_ms = (
            0
            if since is None
            else int(datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp() * 1000)
        )
        self.chunk = CHUNK
        self.bulk_threshold: int | None = BULK_THRESHOLD
        """A backfill from scratch of an object with more records than this uses the Bulk API
        2.0 (None: never)."""

    def _soql(self, sobject: str, fields: list[str], where: list[str]) -> str:
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return f"SELECT {', '.join(fields)} FROM {sobject}{clause} ORDER BY {MODSTAMP} ASC, Id ASC"

    def _event(self, sobject: str, record: dict[str, Any]) -> Event | BadRecord:
        try:
            return self.mapper.event(sobject, record)
        except DataError as exc:  # reported in the page (skipped and quarantined), never dropped
            return BadRecord(sobject, str(record.get("Id") or ""), exc.reason, exc.where)

    async def _scan(
        self,
        sobject: str,
        cursor: dict[str, Any],
        ready: asyncio.Future[None],
        *,
        backfill: bool,
    ) -> AsyncIterator[Page]:
        state = dict(cursor.get(sobject) or {})
        after: tuple[int, str] | None = None
        if backfill:
            start = int(state.get("t", self.backfill_from_ms))
            if "id" in state:
                after = (start, str(state["id"]))
        else:
            start = max(0, int(state.get("t", 0)) - self.overlap_ms) if "t" in state else 0
        where = [f"{MODSTAMP} >= {format_soql_time(start)}"] if start > 0 else []
        archived = sobject in ARCHIVING
        if archived:
            where.insert(0, "IsDeleted = false")
        soql = self._soql(sobject, self.mapper.soql_fields(sobject), where)
        async with start_reading(
            self.client.query_chunks(
                f"query {sobject}", soql, include_deleted=archived, size=self.chunk
            )
        ) as pages:
            if backfill and after is None and self.bulk_threshold is not None:
                clause = f" WHERE {' AND '.join(where)}" if where else ""
                total = await self.client.count(
                    f"count {sobject}", f"SELECT COUNT() FROM {sobject}{clause}"
                )
                bulk = total > self.bulk_threshold
            else:
                bulk = False
            if not bulk:
                await ready  # the API user and periods are known before any record is mapped
                async for records in pages:
                    events: list[Event] = []
                    bad: list[BadRecord] = []
                    for record in records:
                        ms = to_ms(record.get(MODSTAMP)) or 0
                        rid = str(record.get("Id"))
                        if after is not None and (ms, rid) <= after:
                            continue  # read before the backfill was interrupted
                        event = self._event(sobject, record)
                        if isinstance(event, BadRecord):
                            bad.append(event)
                        else:
                            events.append(event)
                        if ms >= int(state.get("t", 0)):
                            state.update(t=ms, id=rid)
                    cursor = {**cursor, sobject: dict(state)}
                    yield Page(events, cursor, skipped=bad)
                return
        # the first page asked for beside the COUNT() was dropped (closed) above
        await ready
        async for page in self._bulk(sobject, where, cursor, archived=archived):
            yield page

    async def _bulk(
        self, sobject: str, where: list[str], cursor: dict[str, Any], *, archived: bool
    ) -> AsyncIterator[Page]:
        """A large first backfill through a Bulk API 2.0 query job (unordered CSV pages of 50,000
        rows for a handful of API calls). The cursor moves only once the job is read in full:
        an interrupted bulk backfill starts that object again (re-reads are harmless)."""
        state = dict(cursor.get(sobject) or {})
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        soql = f"SELECT {', '.join(self.mapper.soql_fields(sobject))} FROM {sobject}{clause}"
        best: tuple[int, str] | None = None
        async for records in self.client.bulk_chunks(
            f"bulk query {sobject}", sobject, soql, include_deleted=archived
        ):
            events: list[Event] = []
            bad: list[BadRecord] = []
            for record in records:
                key = (to_ms(record.get(MODSTAMP)) or 0, str(record.get("Id")))
                best = key if best is None or key > best else best
                event = self._event(sobject, record)
                if isinstance(event, BadRecord):
                    bad.append(event)
                else:
                    events.append(event)
            yield Page(events, cursor, skipped=bad)
        if best is not None:
            state.update(t=best[0], id=best[1])
        yield Page([], {**cursor, sobject: state})

    def _deleted_soql(self, sobject: str, cursor: dict[str, Any]) -> str:
        state = cursor.get(sobject) or {}
        start = max(0, int(state.get("deleted_t", self.backfill_from_ms)) - self.overlap_ms)
        where = ["IsDeleted = true"]
        if start > 0:
            where.append(f"{MODSTAMP} >= {format_soql_time(start)}")
        return self._soql(sobject, ["Id", MODSTAMP], where)

    async def _deleted(
        self, sobject: str, chunks: AsyncIterator[list[dict[str, Any]]], cursor: dict[str, Any]
    ) -> AsyncIterator[Page]:
        """Delete events from the ``queryAll`` of deleted rows (asked for with the cursor the
        object's scan started from; only the scan moves ``t``/``id``, only this ``deleted_t``)."""
        state = dict(cursor.get(sobject) or {})
        async for records in chunks:
            events: list[Event] = []
            bad: list[BadRecord] = []
            for record in records:
                try:
                    events.append(self.mapper.delete(sobject, record))
                except DataError as exc:
                    bad.append(
                        BadRecord(sobject, str(record.get("Id") or ""), exc.reason, exc.where)
                    )
                    continue
                state["deleted_t"] = max(int(state.get("deleted_t", 0)), events[-1].version)
            cursor = {**cursor, sobject: dict(state)}
            yield Page(events, cursor, skipped=bad)

    async def _prepare(self) -> None:
        """What mapping needs from the org: the API user, the fiscal periods."""
        if self.mapper.own_user is None:  # whose changes are our write-backs
            self.mapper.learn_own_user(await self.client.own_user_id())
        if "ForecastingQuota" in self.mapper.sobjects and not self.mapper.periods:
            self.mapper.learn_periods(
                await self.client.query_records("query Period", "SELECT Id, Type FROM Period")
            )

    async def _run(self, cursor: Cursor | None, *, backfill: bool) -> AsyncIterator[Page]:
        current: dict[str, Any] = dict(cursor or {})
        ready: asyncio.Future[None] = asyncio.ensure_future(self._prepare())
        try:
            for sobject in self.mapper.sobjects:
                deleted_soql = self._deleted_soql(sobject, current)
                async with start_reading(
                    self.client.query_chunks(
                        f"queryAll deleted {sobject}",
                        deleted_soql,
                        include_deleted=True,
                        size=self.chunk,
                    )
                ) as deleted:
                    async for page in self._scan(sobject, current, ready, backfill=backfill):
                        current = page.cursor
                        yield page
                    async for page in self._deleted(sobject, deleted, current):
                        current = page.cursor
                        yield page
                yield Page([], current)
        finally:
            if not ready.done():
                ready.cancel()
                await asyncio.wait({ready})
            if not ready.cancelled():
                ready.exception()  # retrieved (an error it raised was raised by the scan too)

    def backfill(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._run(cursor, backfill=True)

    def poll(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._run(cursor, backfill=False)
