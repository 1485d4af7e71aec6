"""Creating the custom fields write-back needs (``POST /api/v2/<entity>Fields``)."""

from __future__ import annotations

from collections.abc import Sequence

from ..protocols import FieldSpec
from .client import PipedriveClient
from .mapping import FieldKeys
from .sink import ENTITY

__all__ = ["PipedriveProvisioner"]


class PipedriveProvisioner:
    def __init__(self, client: PipedriveClient, keys: FieldKeys) -> None:
        self.client = client
        self.keys = keys

    async def missing(self, fields: Sequence[FieldSpec]) -> list[FieldSpec]:
        out = []
        for f in fields:
            entity = ENTITY.get(f.object, f.object)
            await self.keys.load(entity, refresh=True)
            if self.keys.key(entity, f.name) is None:
                out.append(f)
        return out

    async def create(self, fields: Sequence[FieldSpec]) -> list[str]:
        lines = []
        for f in fields:
            entity = ENTITY.get(f.object, f.object)
            field_type = "monetary" if f.unit == "money" else "double"
            created = await self.client.create_field(entity, f.name, field_type)
            await self.keys.load(entity, refresh=True)
            lines.append(
                f"created {entity} field {f.name!r} ({field_type}, key {created.get('key')})"
            )
        return lines
