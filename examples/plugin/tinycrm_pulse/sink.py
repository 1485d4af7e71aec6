"""Writing values: ``PATCH /v1/fields`` takes up to 50 updates and answers one result each."""

from __future__ import annotations

from collections.abc import Sequence

from crm_pulse.connectors import FieldWrite, WriteResult

from .client import TinyCrmClient


class TinyCrmSink:
    max_batch = 50
    rounds_in_flight = 1  # one call after the other

    def __init__(self, client: TinyCrmClient) -> None:
        self.client = client

    async def write(self, writes: Sequence[FieldWrite]) -> list[WriteResult]:
        # the last value of a record's field wins: send it once
        last = {(w.object, w.record_id, w.field): w for w in writes}
        body = {
            "updates": [
                {"object": w.object, "id": w.record_id, "field": w.field, "value": w.value}
                for w in last.values()
            ]
        }
        data = await self.client.request("PATCH", "/v1/fields", json=body, retry=False)
        outcome = {
            (u["object"], u["id"], u["field"]): r
            for u, r in zip(body["updates"], data["results"], strict=True)
        }
        results = []
        for w in writes:
            r = outcome[(w.object, w.record_id, w.field)]
            results.append(WriteResult(w, ok=bool(r.get("ok")), reason=str(r.get("error", ""))))
        return results
