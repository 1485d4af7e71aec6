"""Creating the custom fields write-back needs (``POST /crm/v8/settings/fields?module=...``).

A field is looked up by API name or label. A missing one is created with the write-back
field's name as its label (Zoho derives the API name from the label: spaces become
underscores), as ``currency`` for money metrics and ``double`` (decimal) otherwise. Editions or
profiles that may not create fields through the API get a line saying exactly what to create
by hand instead of a failure.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import CrmPulseError, RetriableError
from ..protocols import FieldSpec
from .client import ZohoClient
from .mapping import FieldCatalog
from .sink import MODULE

__all__ = ["ZohoProvisioner"]


class ZohoProvisioner:
    def __init__(self, client: ZohoClient, catalog: FieldCatalog) -> None:
        self.client = client
        self.catalog = catalog

    async def missing(self, fields: Sequence[FieldSpec]) -> list[FieldSpec]:
        out = []
        for f in fields:
            module = MODULE.get(f.object, f.object)
            await self.catalog.load(module, refresh=True)
            if self.catalog.api_name(module, f.name) is None:
                out.append(f)
        return out

    async def create(self, fields: Sequence[FieldSpec]) -> list[str]:
        lines = []
        for f in fields:
            module = MODULE.get(f.object, f.object)
            data_type = "currency" if f.unit == "money" else "double"
            kind = "Currency" if data_type == "currency" else "Decimal"
            try:
                created = await self.client.create_field(module, f.name, data_type)
            except RetriableError:
                raise
            except CrmPulseError as exc:
                lines.append(
                    f"could not create {module} field {f.name!r} ({exc}); create it by hand: "
                    f"Setup > Customization > Modules and Fields > {module} > a {kind} field "
                    f"labelled {f.name!r}"
                )
                continue
            await self.catalog.load(module, refresh=True)
            api = self.catalog.api_name(module, f.name) or created.get("details", {}).get(
                "api_name"
            )
            lines.append(f"created {module} field {f.name!r} ({data_type}, API name {api})")
        return lines
