"""Pulling Pipedrive: ``updated_since`` + ``sort_by=update_time`` over v2 lists, cursor paging.

Each entity is read from its update-time cursor minus ``overlap`` (equal update times and late
commits are caught by the re-read; versions make re-reads harmless). Deals are also read from
``/api/v2/deals/archived`` (archived deals still count) and with ``status=deleted`` from both
lists (deletes; a deal archived and then deleted is only in the archived one). Pipedrive lists
deleted deals for 30 days only: a connector stopped longer misses deletes (run a backfill).
The cursor is ``{entity: {"t": ms}}``, with deals' archived and deleted lists under their
own marks (``"archived"``, ``"deleted"``) and, while polling, the organizations still to be
re-stated because their deals changed (``organizations.touched``).

Users (canonical ``user``, for CRM adoption) come from ``GET /v1/users`` (API v2 has no users
list), all of them in one answer (10 tokens): every backfill and, while polling, every
``users_every`` seconds, each user emitted (versions make repeats harmless). Their mark is
``{"users": {"checked_ms": ms}}``; a cursor without it (written before users were read) reads
them at once. An OAuth app without ``users:read`` gets a warning and no users, never a stop.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from ...errors import DataError, FatalError
from ...metrics.events import Event
from ..protocols import BadRecord, Cursor, Page
from ..readahead import start_reading
from .client import PipedriveClient
from .mapping import FieldKeys, PipedriveMapper
from .settings import PipedriveSettings

__all__ = ["PipedriveSource"]

log = logging.getLogger("crm_pulse.pipedrive")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fold(history: dict[str, list[str | None]], deals: Sequence[dict[str, Any]]) -> None:
    """Fold deals into ``history[org id] = [first won_time, latest update_time]``."""
    for deal in deals:
        if not deal.get("org_id"):
            continue
        entry = history.setdefault(str(deal["org_id"]), [None, None])
        updated, won = deal.get("update_time"), deal.get("won_time")
        if updated and (entry[1] is None or str(updated) > entry[1]):
            entry[1] = str(updated)
        if deal.get("status") == "won" and won and (entry[0] is None or str(won) < entry[0]):
            entry[0] = str(won)


_Mapped = tuple[list[Event], list[BadRecord]]


class PipedriveSource:
    def __init__(
        self,
        client: PipedriveClient,
        mapper: PipedriveMapper,
        keys: FieldKeys,
        settings: PipedriveSettings,
        *,
        users_every: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.mapper = mapper
        self.keys = keys
        self.entities: Sequence[str] = settings.objects
        self.read_users = settings.users
        self.users_every_ms = int(users_every * 1000)
        self.clock = clock
        self.overlap_ms = int(settings.overlap * 1000)
        since = settings.backfill_since
        self.backfill_from = (
            None
            if since is None
            else int(datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp() * 1000)
        )

    def _events(self, entity: str, records: Sequence[dict[str, Any]]) -> _Mapped:
        out, bad = [], []
        for r in records:
            try:
                out.append(self.mapper.event(entity, r))
            except DataError as exc:  # reported in the page: skipped and quarantined
                bad.append(BadRecord(entity, str(r.get("id") or ""), exc.reason, exc.where))
        return out, bad

    async def _organizations(
        self,
        records: Sequence[dict[str, Any]],
        history: dict[str, list[str | None]] | None = None,
    ) -> _Mapped:
        out, bad = [], []
        for r in records:
            known: tuple[str | None, str | None] | None = None
            if history is not None:
                first_won, latest = history.get(str(r.get("id")), (None, None))
                known = (first_won, latest)
            try:
                out.append(await self.mapper.organization_event(self.client, r, known))
            except DataError as exc:  # reported in the page: skipped and quarantined
                rid = str(r.get("id") or "")
                bad.append(BadRecord("organizations", rid, exc.reason, exc.where))
        return out, bad

    def _start(self, t: Any, *, backfill: bool) -> int | None:
        if t is None:
            return self.backfill_from
        return max(0, int(t) - (0 if backfill else self.overlap_ms))

    @staticmethod
    def _paths(entity: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(cursor key, path, extra query) of every list an entity is read from. Each list has
        its own update-time mark, so a pass interrupted between two lists of deals resumes the
        later list from where it stood, not from the earlier list's newer mark."""
        if entity != "deals":
            return [("t", f"/api/v2/{entity}", {})]
        return [
            ("t", "/api/v2/deals", {}),
            ("archived", "/api/v2/deals/archived", {}),
            ("deleted", "/api/v2/deals", {"status": "deleted"}),
            # a deal archived and then deleted is listed only here
            ("archived_deleted", "/api/v2/deals/archived", {"status": "deleted"}),
        ]

    async def _run(self, cursor: Cursor | None, *, backfill: bool) -> AsyncIterator[Page]:
        current: dict[str, Any] = dict(cursor or {})
        derive = "organizations" in self.entities and self.mapper.derives_customer_since
        # organizations whose deals changed and that are not re-stated yet; kept in the cursor
        # while polling (small sets) so a pass interrupted after the deals still re-states them
        touched: set[str] = set((current.get("organizations") or {}).get("touched") or [])
        # a backfill that reads every deal from the start (before the organizations) learns each
        # organization's first won deal on the way: no per-organization deal listing (10 tokens
        # each, twice) then
        history: dict[str, list[str | None]] | None = None
        if (
            backfill
            and derive
            and self.backfill_from is None
            and "deals" in self.entities
            and list(self.entities).index("deals") < list(self.entities).index("organizations")
            and not current.get("deals")
        ):
            history = {}
        for entity in self.entities:
            await self.keys.load(entity)
            state = dict(current.get(entity) or {})
            # an entity's lists (deals: live, archived, deleted, archived + deleted) do not
            # depend on each other: every list's first request leaves now (the client keeps
            # them within the burst window), and the lists are handed out one after the other
            lists = []
            for mark, path, extra in self._paths(entity):
                t = state.get(mark)
                start = self._start(t, backfill=backfill)
                params: dict[str, Any] = {
                    "sort_by": "update_time",
                    "sort_direction": "asc",
                    **extra,
                }
                if start is not None:
                    params["updated_since"] = _iso(start)
                lists.append((mark, int(t or 0), start_reading(self.client.pages(path, params))))
            try:
                for mark, newest, pages in lists:
                    async for records in pages:
                        for r in records:
                            with contextlib.suppress(DataError):
                                newest = max(newest, self.mapper.version(r))
                        state[mark] = newest
                        if entity == "deals" and derive:
                            touched.update(str(r["org_id"]) for r in records if r.get("org_id"))
                            if history is not None:
                                _fold(history, records)
                        if entity == "organizations" and derive:
                            touched.difference_update(str(r.get("id")) for r in records)
                        current = self._mark(
                            current, entity, state, touched, derive and not backfill
                        )
                        if entity == "organizations" and derive:
                            events, bad = await self._organizations(records, history)
                        else:
                            events, bad = self._events(entity, records)
                        yield Page(events, current, skipped=bad)
                    state[mark] = newest
            finally:
                for _, _, pages in lists:
                    await pages.aclose()
            if entity == "organizations" and derive and touched:
                # a deal won (or lost, or deleted) changes when its organization became a customer
                orgs = [o for o in (await self._fetch_orgs(sorted(touched))) if o is not None]
                touched.clear()
                current = self._mark(current, entity, state, touched, derive and not backfill)
                events, bad = await self._organizations(orgs, history)
                yield Page(events, current, skipped=bad)
            current = self._mark(current, entity, state, touched, derive and not backfill)
            yield Page([], current)
        if self.read_users:
            now_ms = int(self.clock() * 1000)
            checked = (current.get("users") or {}).get("checked_ms")
            if backfill or checked is None or now_ms - int(checked) >= self.users_every_ms:
                yield await self._users(current, now_ms)

    async def _users(self, current: dict[str, Any], now_ms: int) -> Page:
        """Every user of the company as canonical users; marks the pass done."""
        events, bad = [], []
        try:
            users = await self.client.users()
        except FatalError as exc:  # a missing scope must not stop the records
            log.warning("Pipedrive users not read (users for adoption metrics): %s", exc)
            users = []
        for user in users:
            try:
                events.append(self.mapper.user_event(user))
            except DataError as exc:
                bad.append(BadRecord("users", str(user.get("id") or ""), exc.reason, exc.where))
        return Page(events, {**current, "users": {"checked_ms": now_ms}}, skipped=bad)

    @staticmethod
    def _mark(
        current: dict[str, Any],
        entity: str,
        state: dict[str, Any],
        touched: set[str],
        keep_touched: bool,
    ) -> dict[str, Any]:
        out = {**current, entity: dict(state)}
        orgs = dict(out.get("organizations") or {})
        orgs.pop("touched", None)
        if keep_touched and touched:
            orgs["touched"] = sorted(touched)
        if orgs or "organizations" in out:
            out["organizations"] = orgs
        return out

    async def _fetch_orgs(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        return [await self.client.get("organizations", i) for i in ids]

    def backfill(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._run(cursor, backfill=True)

    def poll(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._run(cursor, backfill=False)
