"""Custom properties for the write-back fields: a ``crm_pulse`` group and number properties."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..protocols import FieldSpec
from .client import HubSpotClient

__all__ = ["HubSpotProvisioner"]


class HubSpotProvisioner:
    def __init__(self, client: HubSpotClient, group: str) -> None:
        self.client = client
        self.group = group

    async def missing(self, fields: Sequence[FieldSpec]) -> list[FieldSpec]:
        out: list[FieldSpec] = []
        existing: dict[str, set[str]] = {}
        for f in fields:
            if f.object not in existing:
                existing[f.object] = {p["name"] for p in await self.client.properties(f.object)}
            if f.name not in existing[f.object]:
                out.append(f)
        return out

    async def create(self, fields: Sequence[FieldSpec]) -> list[str]:
        lines: list[str] = []
        groups: dict[str, set[str]] = {}
        for f in fields:
            if f.object not in groups:
                groups[f.object] = {g["name"] for g in await self.client.groups(f.object)}
                if self.group not in groups[f.object]:
                    await self.client.create_group(f.object, self.group, "crm-pulse")
                    lines.append(f"created property group {self.group} on {f.object}")
            body: dict[str, Any] = {
                "name": f.name,
                "label": f.label,
                "type": "number",
                "fieldType": "number",
                "groupName": self.group,
                "description": f.description,
            }
            if f.unit == "rate":
                body["numberDisplayHint"] = "percentage"
            elif f.unit == "money":
                body["showCurrencySymbol"] = True
            await self.client.create_property(f.object, body)
            lines.append(f"created {f.object}.{f.name} ({f.unit})")
        return lines
