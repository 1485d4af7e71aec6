"""Custom fields for write-back: checked with ``describe``, created through the Tooling API.

``missing`` says exactly which fields an object lacks. ``create`` makes them as Number, Percent
or Currency fields; if the Tooling API is not permitted for this user it says what to create by
hand. Either way an admin must then grant field-level security (a permission set) to the
integration user, which the lines returned say.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import CrmPulseError
from ..protocols import FieldSpec
from .client import SalesforceClient

__all__ = ["SalesforceProvisioner"]


class SalesforceProvisioner:
    def __init__(self, client: SalesforceClient) -> None:
        self.client = client

    async def missing(self, fields: Sequence[FieldSpec]) -> list[FieldSpec]:
        existing: dict[str, set[str]] = {}
        out = []
        for f in fields:
            if f.object not in existing:
                described = await self.client.describe(f.object)
                existing[f.object] = {str(x["name"]) for x in described.get("fields", [])}
            if f.name not in existing[f.object]:
                out.append(f)
        return out

    async def create(self, fields: Sequence[FieldSpec]) -> list[str]:
        lines = []
        for f in fields:
            kind = {"rate": "Percent", "money": "Currency"}.get(f.unit, "Number")
            body = {
                "FullName": f"{f.object}.{f.name}",
                "Metadata": {
                    "label": f.label[:40],
                    "type": kind,
                    "precision": 18,
                    "scale": 4,
                    "description": f.description,
                },
            }
            try:
                await self.client.create_custom_field(body)
                lines.append(
                    f"created {f.object}.{f.name} ({kind}); grant its field-level security to the integration user"
                )
            except CrmPulseError as exc:
                lines.append(
                    f"could not create {f.object}.{f.name} ({exc}); create it in Setup > Object Manager > {f.object} > Fields: type {kind}, API name {f.name}"
                )
        return lines
