"""Writing custom fields: one PATCH per record (Pipedrive has no batch update).

All writes to one record in a batch are coalesced into one ``PATCH /api/v2/<entity>/<id>`` with
``{"custom_fields": {<hash key>: value}}``; field names are resolved to hash keys through
:class:`~.mapping.FieldKeys`. A 429 raises RateLimited (the outbox retries after Retry-After);
a record that is gone fails permanently (dead letter); an unknown field name fails permanently
with a message naming it and ``crm-pulse provision``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import RateLimited, RetriableError, SkippableError
from ..protocols import FieldWrite, WriteResult
from .client import PipedriveClient
from .mapping import FieldKeys

__all__ = ["PipedriveSink"]

ENTITY = {
    "deal": "deals",
    "deals": "deals",
    "person": "persons",
    "persons": "persons",
    "organization": "organizations",
    "organizations": "organizations",
}


class PipedriveSink:
    max_batch = 50  # writes per round; one PATCH per distinct record in it

    def __init__(self, client: PipedriveClient, keys: FieldKeys) -> None:
        self.client = client
        self.keys = keys

    async def write(self, writes: Sequence[FieldWrite]) -> list[WriteResult]:
        groups: dict[tuple[str, str], dict[str, float | int | None]] = {}
        problems: dict[int, str] = {}
        for i, w in enumerate(writes):
            entity = ENTITY.get(w.object)
            if entity is None:
                problems[i] = (
                    f"Pipedrive object {w.object!r} takes no custom fields (deal, person, organization)"
                )
                continue
            await self.keys.load(entity, retry=False)  # a 429 goes straight to the outbox
            key = self.keys.key(entity, w.field)
            if key is None:
                problems[i] = f"no {entity} field named {w.field!r}: run `crm-pulse provision`"
                continue
            groups.setdefault((entity, w.record_id), {})[key] = w.value
        failed: dict[tuple[str, str], tuple[str, bool]] = {}
        for (entity, rid), values in groups.items():
            try:
                await self.client.patch(entity, rid, {"custom_fields": values})
            except RateLimited:
                raise
            except RetriableError as exc:
                failed[(entity, rid)] = (str(exc), True)
            except SkippableError as exc:
                failed[(entity, rid)] = (str(exc), False)
        results = []
        for i, w in enumerate(writes):
            if i in problems:
                results.append(WriteResult(w, ok=False, reason=problems[i]))
                continue
            failure = failed.get((ENTITY[w.object], w.record_id))
            results.append(
                WriteResult(w, ok=True)
                if failure is None
                else WriteResult(w, ok=False, retriable=failure[1], reason=failure[0])
            )
        return results
