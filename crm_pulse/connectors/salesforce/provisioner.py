"""Custom fields for the write-back: checked with ``describe``, created with the Tooling API.

``missing`` reads ``sobjects/{type}/describe`` once per sObject and lists the fields it lacks.
``create`` posts each one to ``tooling/sobjects/CustomField`` as a Number field (rates with 4
decimals, everything else with 2). Where the integration user may not create fields (no
"Customize Application" permission) the line says exactly what an admin must create instead.

A field created through the Tooling API is visible to no profile yet. If the org has a
permission set named ``crm_pulse`` (assigned to the integration user), provisioning grants it
Read and Edit on every field it creates (a ``FieldPermissions`` record); otherwise the line says
what to grant by hand. Custom field API names end in ``__c``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import FatalError, SkippableError
from ..protocols import FieldSpec
from .client import SalesforceClient

__all__ = ["PERMISSION_SET", "SalesforceProvisioner", "field_metadata", "how_to_create"]

PERMISSION_SET = "crm_pulse"
"""API name of the permission set that gets Edit on the fields provisioning creates."""


def field_metadata(spec: FieldSpec) -> dict[str, Any]:
    """The Tooling API ``Metadata`` of a Number field for ``spec``."""
    scale = 4 if spec.unit == "rate" else 2
    meta: dict[str, Any] = {
        "label": spec.label[:40],
        "type": "Number",
        "precision": 18,
        "scale": scale,
        "required": False,
        "externalId": False,
    }
    if spec.description:
        meta["description"] = spec.description[:1000]
        meta["inlineHelpText"] = spec.description[:510]
    return meta


def how_to_create(spec: FieldSpec) -> str:
    """What an admin does by hand to create the field."""
    meta = field_metadata(spec)
    digits = meta["precision"] - meta["scale"]
    return (
        f"Setup > Object Manager > {spec.object} > Fields & Relationships > New: type Number, "
        f"length {digits}, decimal places {meta['scale']}, label {meta['label']!r}, "
        f"field name {spec.name.removesuffix('__c')!r} (API name {spec.name}); then give the "
        "integration user Edit access to it (field-level security)"
    )


class SalesforceProvisioner:
    def __init__(self, client: SalesforceClient) -> None:
        self.client = client

    async def missing(self, fields: Sequence[FieldSpec]) -> list[FieldSpec]:
        existing: dict[str, set[str]] = {}
        out: list[FieldSpec] = []
        for f in fields:
            if f.object not in existing:
                data = await self.client.describe(f.object)
                existing[f.object] = {str(x.get("name")) for x in data.get("fields") or []}
            if f.name not in existing[f.object]:
                out.append(f)
        return out

    async def unfit(self, fields: Sequence[FieldSpec]) -> dict[tuple[str, str], str]:
        """Existing fields whose type cannot hold a number."""
        numeric = {"double", "percent", "currency", "int", "long"}
        out: dict[tuple[str, str], str] = {}
        types: dict[str, dict[str, str]] = {}
        for f in fields:
            if f.object not in types:
                data = await self.client.describe(f.object)
                types[f.object] = {
                    str(x.get("name")): str(x.get("type")) for x in data.get("fields") or []
                }
            kind = types[f.object].get(f.name)
            if kind is not None and kind not in numeric:
                out[(f.object, f.name)] = f"a {kind} field, not a number, percent or currency"
        return out

    async def _permission_set(self) -> str | None:
        rows = await self.client.query_records(
            "find permission set", f"SELECT Id FROM PermissionSet WHERE Name = '{PERMISSION_SET}'"
        )
        return str(rows[0]["Id"]) if rows else None

    async def _grant(self, permission_set: str | None, f: FieldSpec) -> str:
        if permission_set is None:
            return (
                f"no permission set {PERMISSION_SET!r}: grant the integration user Edit on it "
                "(field-level security), or create that permission set, assign it to the "
                "integration user and crm-pulse grants it on the fields it creates"
            )
        body = {
            "ParentId": permission_set,
            "SobjectType": f.object,
            "Field": f"{f.object}.{f.name}",
            "PermissionsRead": True,
            "PermissionsEdit": True,
        }
        try:
            await self.client.create_record("FieldPermissions", body)
        except (FatalError, SkippableError) as exc:
            return (
                f"could not grant Edit to permission set {PERMISSION_SET} ({exc}): grant it by hand"
            )
        return f"granted Read and Edit to permission set {PERMISSION_SET}"

    async def create(self, fields: Sequence[FieldSpec]) -> list[str]:
        lines: list[str] = []
        permission_set: str | None = None
        looked = False
        for f in fields:
            if not f.name.endswith("__c"):
                lines.append(
                    f"cannot create {f.object}.{f.name}: custom field API names end in __c "
                    f"(write to {f.name}__c instead?)"
                )
                continue
            body = {"FullName": f"{f.object}.{f.name}", "Metadata": field_metadata(f)}
            try:
                await self.client.create_custom_field(body)
            except (FatalError, SkippableError) as exc:
                lines.append(
                    f"could not create {f.object}.{f.name} ({exc}); create it by hand: "
                    f"{how_to_create(f)}"
                )
                continue
            if not looked:
                permission_set, looked = await self._permission_set(), True
            grant = await self._grant(permission_set, f)
            lines.append(f"created {f.object}.{f.name} (Number, {f.unit}); {grant}")
        return lines
