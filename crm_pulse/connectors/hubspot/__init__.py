"""The HubSpot connector (CRM v3 through hubspot-api-client).

Pull: search API with keyset paging (see :mod:`.source`); receive: v3-signed webhooks
(:mod:`.webhooks`); write: ``batch/update`` (:mod:`.sink`); provision: custom properties in a
``crm_pulse`` group (:mod:`.provisioner`); settings: :mod:`.settings`. The simulator used by
tests and the sandbox is :mod:`crm_pulse.sandbox.hubspot`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...config.connectors import ConnectorSettings
from ..protocols import Connector
from .client import HubSpotClient
from .mapping import HubSpotMapper
from .provisioner import HubSpotProvisioner
from .records import RecordMapper
from .settings import HubSpotSettings
from .sink import HubSpotReader, HubSpotSink
from .source import HubSpotSource, OwnersAccess
from .webhooks import HubSpotReceiver

__all__ = [
    "HubSpotClient",
    "HubSpotConnector",
    "HubSpotMapper",
    "HubSpotProvisioner",
    "HubSpotReceiver",
    "HubSpotSettings",
    "HubSpotSink",
    "HubSpotSource",
    "RecordMapper",
]


class HubSpotConnector(Connector):
    """One HubSpot portal. ``options`` tune the parts for tests and the sandbox:
    ``search_per_second`` (client pacing of the search API, default 5),
    ``search_arrival`` (its one-way allowance, :data:`~.client.SEARCH_ARRIVAL`; None: count
    searches from their answers), ``archived_every``
    (seconds between listings of archived records while polling, default 600)."""

    kind: ClassVar[str] = "hubspot"
    settings_model: ClassVar[type[ConnectorSettings]] = HubSpotSettings

    def __init__(self, name: str, settings: Any, **options: Any) -> None:
        super().__init__(name, settings)
        if not isinstance(settings, HubSpotSettings):
            settings = HubSpotSettings.model_validate(settings)
        self.poll_interval = settings.poll_interval
        self.settings = settings
        client_options = {
            k: options[k] for k in ("search_per_second", "search_arrival") if k in options
        }
        self.client = HubSpotClient(settings, **client_options)
        self.mapper = HubSpotMapper(settings.mapping, name)
        self.records = RecordMapper(self.client, self.mapper, settings.objects)
        self.source = HubSpotSource(
            self.client,
            self.mapper,
            settings,
            records=self.records,
            archived_every=float(options.get("archived_every", 600.0)),
        )
        secret = settings.app_secret.get_secret_value() if settings.app_secret else None
        path = "/webhooks/hubspot" if name == "hubspot" else f"/webhooks/{name}"
        self.receiver = HubSpotReceiver(
            self.client,
            self.mapper,
            secret,
            records=self.records,
            objects=settings.objects,
            portal_id=settings.portal_id,
            path=path,
        )
        self.sink = HubSpotSink(self.client)
        self.reader = HubSpotReader(self.client)
        self.provisioner = HubSpotProvisioner(self.client, settings.property_group)
        self.type_checker = self.provisioner
        self.access = OwnersAccess(self.client) if settings.owners else None

    async def aclose(self) -> None:
        self.client.close()
