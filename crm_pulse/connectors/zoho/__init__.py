"""The Zoho CRM connector: our own async httpx client for REST API v8 (see docs/connect-zoho.md
for why not the vendor's SDK).

Auth: OAuth 2.0 refresh-token flow of a self client, per data centre (:mod:`.oauth`); pull:
Get Records by ``Modified_Time`` in keyset windows plus Get Deleted Records (:mod:`.source`);
receive: Notification API callbacks verified by the channel token (:mod:`.webhooks`), the
channel kept open by :mod:`.channel`; write: Update Records, 100 a call (:mod:`.sink`);
provision: the fields API (:mod:`.provisioner`); settings: :mod:`.settings`. The simulator used
by tests and the sandbox is :mod:`crm_pulse.sandbox.zoho`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...config.connectors import ConnectorSettings
from ..protocols import Connector
from .channel import ChannelKeeper
from .client import ZohoClient
from .mapping import FieldCatalog, ZohoMapper
from .provisioner import ZohoProvisioner
from .settings import ZohoSettings
from .sink import ZohoReader, ZohoSink
from .source import OwnUserAccess, ZohoSource
from .webhooks import ZohoReceiver

__all__ = [
    "ChannelKeeper",
    "FieldCatalog",
    "ZohoClient",
    "ZohoConnector",
    "ZohoMapper",
    "ZohoProvisioner",
    "ZohoReader",
    "ZohoReceiver",
    "ZohoSettings",
    "ZohoSink",
    "ZohoSource",
]


class ZohoConnector(Connector):
    kind: ClassVar[str] = "zoho"
    settings_model: ClassVar[type[ConnectorSettings]] = ZohoSettings

    def __init__(self, name: str, settings: Any) -> None:
        super().__init__(name, settings)
        if not isinstance(settings, ZohoSettings):
            settings = ZohoSettings.model_validate(settings)
        self.poll_interval = settings.poll_interval
        self.client = ZohoClient(settings)
        self.catalog = FieldCatalog(self.client)
        self.mapper = ZohoMapper(settings.mapping, name, self.catalog)
        token = settings.channel_token.get_secret_value() if settings.channel_token else None
        self.channel = (
            ChannelKeeper(
                self.client,
                channel_id=settings.channel_id,
                modules=settings.objects,
                notify_url=str(settings.notify_url),
                token=token,
                lifetime=settings.channel_lifetime,
            )
            if settings.notify_url is not None and token is not None
            else None
        )
        self.source = ZohoSource(self.client, self.mapper, self.catalog, settings, self.channel)
        path = "/webhooks/zoho" if name == "zoho" else f"/webhooks/{name}"
        self.receiver = ZohoReceiver(
            self.client, self.mapper, token, settings.channel_id, set(settings.objects), path=path
        )
        self.sink = ZohoSink(self.client, self.catalog)
        self.reader = ZohoReader(self.client, self.catalog)
        self.provisioner = ZohoProvisioner(self.client, self.catalog)
        self.access = OwnUserAccess(self.client)

    async def aclose(self) -> None:
        await self.client.aclose()
