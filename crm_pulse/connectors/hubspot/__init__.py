"""The HubSpot connector (CRM v3 through hubspot-api-client).

Pull: search API with keyset paging (see :mod:`.source`); receive: v3-signed webhooks
(:mod:`.webhooks`); write: ``batch/update`` (:mod:`.sink`); provision: custom properties in a
``crm_pulse`` group (:mod:`.provisioner`). :mod:`.fake` is a local HubSpot for tests and the
sandbox.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...config.models import HubSpotSettings
from ..protocols import Connector
from .client import HubSpotClient
from .mapping import HubSpotMapper
from .provisioner import HubSpotProvisioner
from .sink import HubSpotSink
from .source import HubSpotSource
from .webhooks import HubSpotReceiver

__all__ = [
    "HubSpotClient",
    "HubSpotConnector",
    "HubSpotMapper",
    "HubSpotProvisioner",
    "HubSpotReceiver",
    "HubSpotSink",
    "HubSpotSource",
]


class HubSpotConnector(Connector):
    kind: ClassVar[str] = "hubspot"

    def __init__(self, name: str, settings: Any) -> None:
        super().__init__(name, settings)
        if not isinstance(settings, HubSpotSettings):
            settings = HubSpotSettings.model_validate(settings)
        self.client = HubSpotClient(settings)
        self.mapper = HubSpotMapper(settings.mapping, name)
        self.source = HubSpotSource(self.client, self.mapper, settings)
        secret = settings.app_secret.get_secret_value() if settings.app_secret else None
        path = "/webhooks/hubspot" if name == "hubspot" else f"/webhooks/{name}"
        self.receiver = HubSpotReceiver(
            self.client, self.mapper, secret, portal_id=settings.portal_id, path=path
        )
        self.sink = HubSpotSink(self.client)
        self.provisioner = HubSpotProvisioner(self.client, settings.property_group)

    async def aclose(self) -> None:
        self.client.close()
