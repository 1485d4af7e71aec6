"""Fetched HubSpot records -> canonical events, shared by the source and the webhook receiver.

:class:`RecordMapper` maps fetched records, keeps the pipeline
stages current (a stage the mapper does not know makes it re-read the pipelines, then re-read
those records with their ``hs_date_entered_<stage>``), and reports unmappable records instead of
failing their neighbours. Engagements (calls, e-mails, meetings, notes, tasks) have no company
property: their ``account_id`` is their associated company (associations v4 batch read, the
lowest id if several), unless ``mapping.fields.activity.account_id`` names a property.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from ...errors import DataError, FatalError
from ...metrics.events import Event
from ..protocols import BadRecord
from .client import HubSpotClient
from .mapping import HubSpotMapper

log = logging.getLogger("crm_pulse.hubspot")

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
