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
from .records import RecordMapper
from .settings import HubSpotSettings

__all__ = ["PAGE", "HubSpotSource", "OwnersAccess"]

log = logging.getLogger("crm_pulse.hubspot")

PAGE = 200


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
