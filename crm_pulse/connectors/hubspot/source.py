"""Pulling HubSpot through the CRM search API, with the cursor rules of the contracts.

Each object type is read in pages of 200 filtered on its last-modified property (``GTE`` the
cursor) and sorted by it. HubSpot applies one sorting rule per search and promises no order
among records that share a value, so the position is a *keyset* ``(t, id)`` settled without
trusting the order of ties, and never an ``after`` offset, so no query pages past HubSpot's
10,000-result cap however many records changed: the window simply moves forward.

* When a page is full, its last instant ``T`` may continue on the next page: the next query
  starts at ``T`` again (``GTE T``) and skips the records of ``T`` it already has.
* When a full page holds one instant only (a flood: a pipeline edit, an import), that instant is
  read on its own by id (``EQ T`` and ``hs_object_id > last``, sorted by ``hs_object_id``), then
  the scan goes on after it (``GT T``). So records sharing one timestamp across pages, even more
  than 10,000 of them, are neither lost nor read past the cap.

Search indexes changes late: each poll starts ``lookback`` before the cursor (re-reads are
harmless: versions). Archived records are listed (``GET /crm/v3/objects/{type}?archived=true``)
and become deletes; listing them costs one request per 100 archived records, so polls do it every
``archived_every`` seconds (backfills always; webhooks bring deletes sooner).

The cursor is plain data, per object type: ``{"t": ms, "id": "123" | None, "archived_t": ms,
"archived_checked_ms": ms}``: everything modified before ``t`` is read, and at ``t`` the records
with ids up to ``id`` (None: none of them yet).

Owners (canonical ``user``, for CRM adoption) have no search API: a pass lists every owner,
active then archived (``GET /crm/v3/owners``, ``archived=true``), and emits them all (versions
make the repeats harmless; a portal has hundreds of owners, not millions). Backfills always do
it; polls every ``archived_every`` seconds. Their cursor is ``{"owners": {"checked_ms": ms}}``;
a cursor without it (written before owners were read) reads them at once. A private app
without the ``crm.objects.owners.read`` scope gets a warning and no users, never a stop.

:class:`RecordMapper` (shared with the webhook receiver) maps fetched records, keeps the pipeline
stages current (a stage the mapper does not know makes it re-read the pipelines, then re-read
those records with their ``hs_date_entered_<stage>``), and reports unmappable records instead of
failing their neighbours. Engagements (calls, e-mails, meetings, notes, tasks) have no company
property: their ``account_id`` is their associated company (associations v4 batch read, the
lowest id if several), unless ``mapping.fields.activity.account_id`` names a property.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

from ...errors import DataError, FatalError
from ...metrics.events import Event
from ..protocols import AccessCheck, BadRecord, Cursor, Page
from .client import HubSpotClient
from .mapping import OBJECTS, HubSpotMapper, to_ms
from .settings import HubSpotSettings

__all__ = ["PAGE", "HubSpotSource", "OwnersAccess", "RecordMapper"]

log = logging.getLogger("crm_pulse.hubspot")

PAGE = 200
_PIPELINE_TYPES = ("deals", "tickets")


class RecordMapper:
    """Fetched HubSpot records -> events, with current pipeline stages."""

    def __init__(
        self,
        client: HubSpotClient,
        mapper: HubSpotMapper,
        objects: Sequence[str],
        *,
        refresh_after: float = 600.0,
        min_reload_gap: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.mapper = mapper
        self.objects = list(objects)
        self.refresh_after = refresh_after
        self.min_reload_gap = min_reload_gap
        self.clock = clock
        self.loaded_at: float | None = None
        self._looked_for: dict[str, float] = {}
        self._owners_read_at: float | None = None
        self.skipped: list[str] = []
        """Why records could not be mapped (the last 1,000), for status pages and tests."""

    async def pipelines(self, *, for_stages: set[str] | None = None) -> None:
        """Read the deal and ticket pipelines if never read or stale; with ``for_stages``
        (stages the records name but no pipeline had), again now, unless these very stages
        were looked for within ``min_reload_gap`` (a stage no pipeline has any more)."""
        now = self.clock()
        if for_stages:
            fresh = {
                s for s in for_stages if now - self._looked_for.get(s, -1e18) >= self.min_reload_gap
            }
            if not fresh:
                return
            self._looked_for.update(dict.fromkeys(fresh, now))
        elif self.loaded_at is not None and now - self.loaded_at < self.refresh_after:
            return
        for object_type in _PIPELINE_TYPES:
            if object_type in self.objects:
                self.mapper.learn_pipelines(object_type, await self.client.pipelines(object_type))
        self.loaded_at = now

    async def owners(self, users: set[str]) -> None:
        """Read the owners again for users that changed records but are no owner known yet
        (a new user), at most every ``min_reload_gap`` seconds; without the owners scope the
        changes stay unattributed (a warning, never a stop)."""
        now = self.clock()
        if not users or (
            self._owners_read_at is not None and now - self._owners_read_at < self.min_reload_gap
        ):
            return
        self._owners_read_at = now
        try:
            for archived in (False, True):
                after: str | None = None
                while True:
                    data = await self.client.owners(archived=archived, after=after)
                    for owner in data.get("results") or []:
                        self.mapper.learn_owner(owner)
                    after = ((data.get("paging") or {}).get("next") or {}).get("after")
                    if not after:
                        break
        except FatalError as exc:
            log.warning("HubSpot owners not read (who changed records): %s", exc)

    async def events(
        self,
        object_type: str,
        records: Sequence[dict[str, Any]],
        bad: list[BadRecord] | None = None,
    ) -> list[Event]:
        """One event per mappable record; the others go to ``bad`` (a source's page) or, when
        it is None (webhooks), are logged and remembered in ``skipped``."""
        await self.owners(self.mapper.unknown_users(object_type, records))
        if object_type in _PIPELINE_TYPES and object_type in self.objects:
            await self.pipelines()
            unknown = self.mapper.unknown_stages(object_type, records)
            if unknown:
                await self.pipelines(for_stages=unknown)
                still = self.mapper.unknown_stages(object_type, records)
                if still:
                    log.warning(
                        "HubSpot records in stages no pipeline has; mapped as open",
                        extra={"object": object_type, "stages": sorted(still)},
                    )
                if object_type == "deals" and unknown - still:
                    records = await self._reread(object_type, records, unknown - still)
        companies: dict[str, list[str]] = {}
        if records and self.mapper.account_from_associations(object_type):
            ids = [str(r.get("id")) for r in records]
            companies = await self.client.associated(object_type, "companies", ids)
        events = []
        for record in records:
            found = companies.get(str(record.get("id"))) or []
            # the lowest id, so that the same associations always give the same account
            account = min(found, key=lambda i: (len(i), i)) if found else None
            try:
                events.append(self.mapper.event(object_type, record, account_id=account))
            except DataError as exc:  # reported, never silently dropped
                if bad is None:
                    self.skip(str(exc))
                else:
                    bad.append(
                        BadRecord(object_type, str(record.get("id") or ""), exc.reason, exc.where)
                    )
        return events

    async def _reread(
        self, object_type: str, records: Sequence[dict[str, Any]], stages: set[str]
    ) -> list[dict[str, Any]]:
        """Read again the records in newly learned stages, now asking for their entry dates."""
        ids = [
            str(r.get("id"))
            for r in records
            if str((r.get("properties") or {}).get("dealstage")) in stages
        ]
        fresh = {
            str(r.get("id")): r
            for r in await self.client.batch_read(
                object_type, ids, self.mapper.properties(object_type)
            )
        }
        return [fresh.get(str(r.get("id")), r) for r in records]

    def skip(self, reason: str) -> None:
        self.skipped = [*self.skipped[-999:], reason]
        log.warning("HubSpot record not mapped", extra={"reason": reason})


class OwnersAccess:
    """``crm-pulse doctor``: can the private app read owners (``crm.objects.owners.read``)?
    Without it the source reads no users and attributes no record change, with only a warning
    in the log, so the adoption metrics stay empty: doctor says so."""

    WHAT = "owners (crm.objects.owners.read)"

    def __init__(self, client: HubSpotClient) -> None:
        self.client = client

    async def check(self) -> list[AccessCheck]:
        try:
            data = await self.client.owners(archived=False, after=None)
        except FatalError as exc:
            return [
                AccessCheck(
                    self.WHAT,
                    False,
                    f"owners cannot be read ({exc}): the CRM adoption metrics (active_users, "
                    "active_user_rate, records_created_per_user) would stay empty",
                    "add the crm.objects.owners.read scope to the private app, or set "
                    "owners: false in this connector's section",
                )
            ]
        n = len(data.get("results") or [])
        return [AccessCheck(self.WHAT, True, f"owners readable ({n} on the first page)")]


class HubSpotSource:
    def __init__(
        self,
        client: HubSpotClient,
        mapper: HubSpotMapper,
        settings: HubSpotSettings,
        *,
        records: RecordMapper | None = None,
        archived_every: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.mapper = mapper
        self.objects: Sequence[str] = settings.objects
        self.read_owners = settings.owners
        self.records = records or RecordMapper(client, mapper, settings.objects)
        self.lookback_ms = int(settings.lookback * 1000)
        self.archived_every_ms = int(archived_every * 1000)
        self.clock = clock
        since = settings.backfill_since
        self.backfill_from_ms = 0 if since is None else to_ms(since.isoformat()) or 0

    @property
    def skipped(self) -> list[str]:
        return self.records.skipped

    # ------------------------------------------------------------ queries
    async def _search(
        self, object_type: str, filters: list[dict[str, Any]], sort: str
    ) -> list[dict[str, Any]]:
        body = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],  # one rule at most
            "properties": self.mapper.properties(object_type),
            "limit": PAGE,
        }
        data = await self.client.search(object_type, body)
        return list(data.get("results") or [])

    def _page(
        self,
        object_type: str,
        events: list[Event],
        cursor: dict[str, Any],
        t: int,
        last_id: str | None,
        bad: Sequence[BadRecord] = (),
    ) -> Page:
        state = dict(cursor.get(object_type) or {})
        state.update(t=t, id=last_id)
        cursor[object_type] = state
        return Page(events, {**cursor, object_type: dict(state)}, skipped=bad)

    async def _scan(
        self, object_type: str, t: int, last_id: str | None, cursor: dict[str, Any]
    ) -> AsyncIterator[Page]:
        """Every record at or after the keyset position ``(t, last_id)``, in pages."""
        modified = OBJECTS[object_type].modified
        seen: set[str] = set()  # ids at instant t already emitted (when op is GTE)
        if last_id is not None:  # resume inside instant t: finish it by id first
            async for page in self._ties(object_type, t, last_id, cursor, skip=set()):
                yield page
            op = "GT"
        else:
            op = "GTE"

        def query(t: int, op: str) -> Coroutine[Any, Any, list[dict[str, Any]]]:
            return self._search(
                object_type, [{"propertyName": modified, "operator": op, "value": str(t)}], modified
            )

        # the next page's search, started before this page is mapped when its query is known
        ahead: asyncio.Task[list[dict[str, Any]]] | None = None
        try:
            while True:
                rows = await (ahead if ahead is not None else query(t, op))
                ahead = None
                if not rows:
                    return
                versions = [self.mapper.version(object_type, r) for r in rows]
                top = max(versions)
                at_top = {str(r["id"]) for r, v in zip(rows, versions, strict=True) if v == top}
                fresh = [
                    r
                    for r, v in zip(rows, versions, strict=True)
                    if v != t or str(r["id"]) not in seen
                ]
                if len(rows) == PAGE and len(at_top) < len(rows):
                    ahead = asyncio.create_task(query(top, "GTE"))
                    await asyncio.sleep(0)  # on its way (a worker thread) before the mapping
                bad: list[BadRecord] = []
                events = await self.records.events(object_type, fresh, bad)
                if len(rows) < PAGE:  # the query's whole answer: every record at top is here
                    last = str(max(int(i) for i in at_top))
                    yield self._page(object_type, events, cursor, top, last, bad)
                    return
                yield self._page(object_type, events, cursor, top, None, bad)
                if len(at_top) < len(rows):
                    # more records may share the last instant: the next query (already asked)
                    # starts at it again and skips the ones already read
                    t, op, seen = top, "GTE", at_top
                else:
                    # a full page of one instant: read that instant by id, then go on after it
                    skip = at_top | (seen if top == t else set())
                    async for page in self._ties(object_type, top, "0", cursor, skip=skip):
                        yield page
                    t, op, seen = top, "GT", set()
        finally:
            if ahead is not None:  # stopped early: the search asked ahead is not needed
                ahead.cancel()
                await asyncio.wait({ahead})
                if not ahead.cancelled():
                    ahead.exception()  # retrieved: not logged as lost

    async def _ties(
        self,
        object_type: str,
        t: int,
        last_id: str,
        cursor: dict[str, Any],
        *,
        skip: set[str],
    ) -> AsyncIterator[Page]:
        """The records modified exactly at t with an id above last_id, by id."""
        modified = OBJECTS[object_type].modified
        while True:
            rows = await self._search(
                object_type,
                [
                    {"propertyName": modified, "operator": "EQ", "value": str(t)},
                    {"propertyName": "hs_object_id", "operator": "GT", "value": last_id},
                ],
                "hs_object_id",
            )
            if not rows:
                yield self._page(object_type, [], cursor, t, last_id)
                return
            last_id = str(max(int(r["id"]) for r in rows))
            fresh = [r for r in rows if str(r["id"]) not in skip]
            bad: list[BadRecord] = []
            events = await self.records.events(object_type, fresh, bad)
            yield self._page(object_type, events, cursor, t, last_id, bad)
            if len(rows) < PAGE:
                return

    async def _archived(
        self, object_type: str, cursor: dict[str, Any], now_ms: int
    ) -> AsyncIterator[Page]:
        state = dict(cursor.get(object_type) or {})
        newest = int(state.get("archived_t", 0))
        since = newest - self.lookback_ms
        after: str | None = None
        properties = [OBJECTS[object_type].modified]
        while True:
            data = await self.client.list_archived(object_type, after, properties)
            events = []
            bad: list[BadRecord] = []
            for record in data.get("results") or []:
                at = to_ms(record.get("archivedAt")) or 0
                if at > since:
                    try:
                        events.append(self.mapper.delete(object_type, record))
                    except DataError as exc:
                        rid = str(record.get("id") or "")
                        bad.append(BadRecord(object_type, rid, exc.reason, exc.where))
                    newest = max(newest, at)
            after = ((data.get("paging") or {}).get("next") or {}).get("after")
            state["archived_t"] = newest
            if not after:
                state["archived_checked_ms"] = now_ms
            cursor[object_type] = dict(state)
            yield Page(events, {**cursor, object_type: dict(state)}, skipped=bad)
            if not after:
                return

    async def _owners(self, cursor: dict[str, Any], now_ms: int) -> AsyncIterator[Page]:
        """Every owner, active then archived, as canonical users; the last page marks the
        pass done (``owners.checked_ms``)."""
        for archived in (False, True):
            after: str | None = None
            while True:
                try:
                    data = await self.client.owners(archived=archived, after=after)
                except FatalError as exc:  # a missing scope must not stop the records
                    log.warning("HubSpot owners not read (users for adoption metrics): %s", exc)
                    cursor["owners"] = {"checked_ms": now_ms}
                    yield Page([], dict(cursor))
                    return
                events: list[Event] = []
                bad: list[BadRecord] = []
                for owner in data.get("results") or []:
                    self.mapper.learn_owner(owner)
                    try:
                        event = self.mapper.owner_event(owner)
                    except DataError as exc:
                        rid = str(owner.get("id") or "")
                        bad.append(BadRecord("owners", rid, exc.reason, exc.where))
                        continue
                    if event is not None:
                        events.append(event)
                after = ((data.get("paging") or {}).get("next") or {}).get("after")
                if archived and not after:
                    cursor["owners"] = {"checked_ms": now_ms}
                yield Page(events, dict(cursor), skipped=bad)
                if not after:
                    break

    async def _run(self, cursor: Cursor | None, *, backfill: bool) -> AsyncIterator[Page]:
        await self.records.pipelines()  # before any query: stages name properties to read
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
                current = dict(page.cursor)
                yield page
            now_ms = int(self.clock() * 1000)
            checked = int((current.get(object_type) or {}).get("archived_checked_ms", 0))
            if backfill or now_ms - checked >= self.archived_every_ms:
                async for page in self._archived(object_type, current, now_ms):
                    current = dict(page.cursor)
                    if page.events:
                        yield page
            yield Page([], dict(current))
        if self.read_owners:
            now_ms = int(self.clock() * 1000)
            seen = (current.get("owners") or {}).get("checked_ms")
            if backfill or seen is None or now_ms - int(seen) >= self.archived_every_ms:
                async for page in self._owners(current, now_ms):
                    current = dict(page.cursor)
                    yield page

    def backfill(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._run(cursor, backfill=True)

    def poll(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._run(cursor, backfill=False)
