"""Pulling Zoho CRM: Get Records by ``Modified_Time`` with keyset windows, and deleted records.

Each module is read sorted by ``Modified_Time`` ascending from ``If-Modified-Since``. Rather than
walking page numbers (which shift when records change during the read, and stop at 2,000
records), every request asks for page 1 of a window starting at the last ``Modified_Time`` seen
(sent one second early: inclusive whatever Zoho's comparison), and records already read at
exactly that time are recognised by id (the tie-break). Only when a whole page shares the
window's start time does the read page on within that time -- ``page`` up to 10 (2,000
records), then ``page_token`` -- as Zoho requires. Polls start ``overlap`` before the cursor;
versions make the re-reads harmless.

Deletes come from Get Deleted Records (recycle bin and permanent) since the ``deleted`` mark,
asked for beside the module's scan (within the client's concurrency) and handed out after it.
The cursor is ``{module: {"t": ms, "deleted": ms}}``. Each poll and backfill first makes sure
the notification channel (:class:`~.channel.ChannelKeeper`) has not lapsed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from ...errors import DataError, FatalError, SkippableError
from ...metrics.events import Event
from ..protocols import AccessCheck, BadRecord, Cursor, Page
from ..readahead import read_ahead, start_reading
from .channel import ChannelKeeper
from .client import ZohoClient
from .errors import ZohoError
from .mapping import FieldCatalog, ZohoMapper, to_ms
from .settings import ZohoSettings

__all__ = ["OwnUserAccess", "ZohoSource"]


class OwnUserAccess:
    """``crm-pulse doctor``: can the token say which user it acts as (``ZohoCRM.users.READ``)?
    Without it crm-pulse cannot tell its own write-backs from a user's changes: they would
    count as that user's (``active_users``) and their echoes would move metrics."""

    WHAT = "users (ZohoCRM.users.READ)"

    def __init__(self, client: ZohoClient) -> None:
        self.client = client

    async def check(self) -> list[AccessCheck]:
        try:
            user = await self.client.current_user_id(quiet=False)
        except (FatalError, SkippableError) as exc:
            return [
                AccessCheck(
                    self.WHAT,
                    False,
                    f"the API user cannot be read ({exc}): crm-pulse's own writes would count "
                    "as that user's changes",
                    "add the ZohoCRM.users.READ scope to the grant (a new grant code and "
                    "refresh token)",
                )
            ]
        return [AccessCheck(self.WHAT, True, f"writes as user {user}")]


log = logging.getLogger("crm_pulse.zoho")

MAX_PAGE = 10
"""Pages reachable with ``page`` (10 x 200 = 2,000 records); past them Zoho wants page_token."""


class ZohoSource:
    def __init__(
        self,
        client: ZohoClient,
        mapper: ZohoMapper,
        catalog: FieldCatalog,
        settings: ZohoSettings,
        channel: ChannelKeeper | None = None,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.mapper = mapper
        self.catalog = catalog
        self.channel = channel
        self.modules: Sequence[str] = settings.objects
        self.overlap_ms = int(settings.overlap * 1000)
        since = settings.backfill_since
        self.backfill_from = (
            None
            if since is None
            else int(datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp() * 1000)
        )
        self.wall = wall
        self.unavailable: set[str] = set()

    def _events(
        self, module: str, records: Sequence[dict[str, Any]]
    ) -> tuple[list[Event], list[BadRecord]]:
        out, bad = [], []
        for r in records:
            try:
                out.append(self.mapper.event(module, r))
            except DataError as exc:  # reported in the page: skipped and quarantined
                bad.append(BadRecord(module, str(r.get("id") or ""), exc.reason, exc.where))
        return out, bad

    def _version(self, record: dict[str, Any]) -> int | None:
        try:
            return self.mapper.version(record)
        except DataError:
            return None

    async def _records(
        self, module: str, start: int | None
    ) -> AsyncIterator[tuple[list[dict[str, Any]], int | None]]:
        """Every record modified since ``start`` (None: all), in keyset windows; yields each
        page's new records and the window start reached (a safe resume point)."""
        fields = self.mapper.api_fields(module)
        since = start
        seen: set[str] = set()  # ids already read whose version == since
        page, token = 1, None
        while True:
            header = None if since is None else since - 1000
            records, info = await self.client.list_page(
                module, fields, since_ms=header, page=None if token else page, page_token=token
            )
            fresh = []
            for r in records:
                v, rid = self._version(r), str(r.get("id"))
                if (
                    since is not None
                    and v is not None
                    and (v < since or (v == since and rid in seen))
                ):
                    continue  # read before: the second of margin, or the tie group
                fresh.append(r)
            if module == "Deals" and self.mapper.unknown_stages(fresh):
                await self.catalog.reread("Deals")
            if not info.get("more_records") or not records:
                yield fresh, since
                return
            last = self._version(records[-1])
            if last is not None and (since is None or last > since):
                since = last  # progress: the next window starts at the newest time read
                seen = {str(r.get("id")) for r in records if self._version(r) == last}
                page, token = 1, None
            else:  # the whole page shares `since`: page on inside that one second
                seen.update(str(r.get("id")) for r in records)
                if token is None and page < MAX_PAGE:
                    page += 1
                else:
                    token = info.get("next_page_token")
                    if not token:
                        log.warning(
                            "Zoho paging limit reached within one Modified_Time",
                            extra={"zoho_module": module, "since": since},
                        )
                        yield fresh, since
                        return
            yield fresh, since

    async def _deleted(self, module: str, start: int) -> AsyncIterator[list[dict[str, Any]]]:
        page = 1
        while True:
            items, info = await self.client.deleted_page(module, since_ms=start - 1000, page=page)
            yield [i for i in items if (to_ms(i.get("deleted_time")) or 0) >= start]
            if not info.get("more_records") or not items:
                return
            page += 1

    async def _run(self, cursor: Cursor | None, *, backfill: bool) -> AsyncIterator[Page]:
        if self.channel is not None:
            await self.channel.ensure()
        current: dict[str, Any] = dict(cursor or {})
        if self.mapper.own_user is None:  # whose changes are our write-backs
            self.mapper.learn_own_user(await self.client.current_user_id())
        started = int(self.wall() * 1000)
        for module in self.modules:
            if module in self.unavailable:
                continue
            try:
                await self.catalog.load(module)
            except ZohoError as exc:
                if exc.code != "INVALID_MODULE":
                    raise
                # not in this org or edition (Cases, say): the other modules go on
                self.unavailable.add(module)
                log.warning(
                    "Zoho module not available", extra={"zoho_module": module, "reason": str(exc)}
                )
                continue
            state = dict(current.get(module) or {})
            t = state.get("t")
            if t is None:
                start = self.backfill_from
            else:
                start = max(0, int(t) - (0 if backfill else self.overlap_ms))
            newest = int(t) if t is not None else None
            deleted_mark = state.get("deleted")
            first_backfill = deleted_mark is None and not cursor
            since = int(deleted_mark if deleted_mark is not None else started)
            since = max(0, since - (0 if backfill else self.overlap_ms))
            # the deleted records are asked for beside the scan (they depend only on the
            # deleted mark, which the scan does not move), and handed out after it
            deleted = None if first_backfill else start_reading(self._deleted(module, since))
            try:
                async for records, window in read_ahead(self._records(module, start)):
                    for r in records:
                        v = self._version(r)
                        if v is not None and (newest is None or v > newest):
                            newest = v
                    # resume from the window start: everything before it is read
                    mark = window if window is not None and (t is None or window > int(t)) else t
                    state["t"] = mark
                    current = {**current, module: dict(state)}
                    events, bad = self._events(module, records)
                    yield Page(events, current, skipped=bad)
                if newest is not None:
                    state["t"] = newest
                if deleted is None:
                    # a first backfill reads what exists; deletes count from its start
                    state["deleted"] = started - self.overlap_ms
                else:
                    latest = int(deleted_mark) if deleted_mark is not None else since
                    async for items in deleted:
                        deletes, bad = [], []
                        for item in items:
                            try:
                                deletes.append(self.mapper.deleted(module, item))
                            except DataError as exc:
                                rid = str(item.get("id") or "")
                                bad.append(BadRecord(module, rid, exc.reason, exc.where))
                        latest = max([latest, *(e.version - 1 for e in deletes)])
                        yield Page(deletes, current, skipped=bad)
                    state["deleted"] = latest
            finally:
                if deleted is not None:
                    await deleted.aclose()
            current = {**current, module: dict(state)}
            yield Page([], current)

    def backfill(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._run(cursor, backfill=True)

    def poll(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._run(cursor, backfill=False)
