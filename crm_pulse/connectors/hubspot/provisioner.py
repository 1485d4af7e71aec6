"""Custom properties for the write-back fields: a ``crm_pulse`` group and number properties.

Each field becomes a ``type=number, fieldType=number`` property in the connector's property
group (created first where missing), with a display hint from the metric's unit: ``percentage``
for rates, ``currency`` (and the currency symbol) for money. Creating is safe to repeat: a
property or group that appeared meanwhile (HubSpot answers 409) counts as done.

Owners (users) take no custom properties in HubSpot, so a per-rep value needs another target: a
custom object with one record per rep, or deal/company properties (docs/connect-hubspot.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import ConfigError, ConfigProblem
from ..protocols import FieldSpec
from .client import HubSpotClient
from .errors import Refused

__all__ = ["HubSpotProvisioner", "property_body"]

_NO_PROPERTIES = {"owners", "owner", "users", "user"}
_HINTS = {"rate": "percentage", "money": "currency"}


def property_body(spec: FieldSpec, group: str) -> dict[str, Any]:
    """The ``POST /crm/v3/properties/{type}`` body for one field."""
    body: dict[str, Any] = {
        "name": spec.name,
        "label": spec.label,
        "type": "number",
        "fieldType": "number",
        "groupName": group,
        "description": spec.description,
    }
    hint = _HINTS.get(spec.unit)
    if hint is not None:
        body["numberDisplayHint"] = hint
    if spec.unit == "money":
        body["showCurrencySymbol"] = True
    return body


def _refuse_owners(fields: Sequence[FieldSpec]) -> None:
    bad = [f for f in fields if f.object.lower() in _NO_PROPERTIES]
    if bad:
        raise ConfigError(
            [
                ConfigProblem(
                    path="writeback.target.object",
                    message=f"HubSpot {f.object} take no custom properties ({f.name}): write "
                    "per-rep values to a custom object with one record per rep, or to deal or "
                    "company properties",
                )
                for f in bad
            ]
        )


class HubSpotProvisioner:
    def __init__(self, client: HubSpotClient, group: str) -> None:
        self.client = client
        self.group = group

    async def missing(self, fields: Sequence[FieldSpec]) -> list[FieldSpec]:
        _refuse_owners(fields)
        out: list[FieldSpec] = []
        existing: dict[str, set[str]] = {}
        for f in fields:
            if f.object not in existing:
                existing[f.object] = {p["name"] for p in await self.client.properties(f.object)}
            if f.name not in existing[f.object]:
                out.append(f)
        return out

    async def unfit(self, fields: Sequence[FieldSpec]) -> dict[tuple[str, str], str]:
        """Existing properties that are not of type number."""
        out: dict[tuple[str, str], str] = {}
        types: dict[str, dict[str, str]] = {}
        for f in fields:
            if f.object.lower() in _NO_PROPERTIES:
                continue
            if f.object not in types:
                props = await self.client.properties(f.object)
                types[f.object] = {str(p["name"]): str(p.get("type")) for p in props}
            kind = types[f.object].get(f.name)
            if kind is not None and kind != "number":
                out[(f.object, f.name)] = f"a {kind} property, not a number"
        return out

    async def create(self, fields: Sequence[FieldSpec]) -> list[str]:
        _refuse_owners(fields)
        lines: list[str] = []
        groups: dict[str, set[str]] = {}
        for f in fields:
            if f.object not in groups:
                groups[f.object] = {g["name"] for g in await self.client.groups(f.object)}
                if self.group not in groups[f.object]:
                    try:
                        await self.client.create_group(f.object, self.group, "crm-pulse")
                        lines.append(f"created property group {self.group} on {f.object}")
                    except Refused as exc:
                        if exc.status != 409:
                            raise
            body = property_body(f, self.group)
            try:
                await self.client.create_property(f.object, body)
            except Refused as exc:
                if exc.status != 409:
                    raise
                lines.append(f"{f.object}.{f.name} exists already")
                continue
            lines.append(f"created {f.object}.{f.name} ({f.unit})")
        return lines
