"""Creating the custom fields write-back needs (``POST /v1/fields/<object>``)."""

from __future__ import annotations

from collections.abc import Sequence

from crm_pulse.connectors import FieldSpec

from .client import TinyCrmClient


class TinyCrmProvisioner:
    def __init__(self, client: TinyCrmClient) -> None:
        self.client = client

    async def missing(self, fields: Sequence[FieldSpec]) -> list[FieldSpec]:
        out = []
        for f in fields:
            existing = await self.client.request("GET", f"/v1/fields/{f.object}")
            if f.name not in {x["name"] for x in existing["data"]}:
                out.append(f)
        return out

    async def create(self, fields: Sequence[FieldSpec]) -> list[str]:
        lines = []
        for f in fields:
            body = {"name": f.name, "label": f.label, "type": f.unit}
            await self.client.request("POST", f"/v1/fields/{f.object}", json=body, retry=False)
            lines.append(f"created {f.object} field {f.name!r}")
        return lines
