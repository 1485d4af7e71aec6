"""The Salesforce connector (REST API through simple-salesforce).

Pull: SOQL on ``SystemModstamp, Id`` with an overlap window and ``queryAll`` for deletes
(:mod:`.source`); receive: Outbound Messages (:mod:`.webhooks`); write: sObject Collections
(:mod:`.sink`); provision: ``describe`` and the Tooling API (:mod:`.provisioner`); :mod:`.fake` is
a local org for tests and the sandbox.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...config.models import SalesforceSettings
from ..protocols import Connector
from .client import SalesforceClient
from .mapping import SalesforceMapper
from .provisioner import SalesforceProvisioner
from .sink import SalesforceSink
from .source import SalesforceSource
from .webhooks import OutboundMessageReceiver

__all__ = [
    "OutboundMessageReceiver",
    "SalesforceClient",
    "SalesforceConnector",
    "SalesforceMapper",
    "SalesforceProvisioner",
    "SalesforceSink",
    "SalesforceSource",
]


class SalesforceConnector(Connector):
    kind: ClassVar[str] = "salesforce"

    def __init__(self, name: str, settings: Any) -> None:
        super().__init__(name, settings)
        if not isinstance(settings, SalesforceSettings):
            settings = SalesforceSettings.model_validate(settings)
        self.client = SalesforceClient(settings)
        self.mapper = SalesforceMapper(settings.mapping, name)
        self.source = SalesforceSource(self.client, self.mapper, settings)
        om = settings.outbound_messages
        if om is not None:
            path = "/webhooks/salesforce" if name == "salesforce" else f"/webhooks/{name}"
            self.receiver = OutboundMessageReceiver(
                self.client,
                self.mapper,
                om.organization_id,
                om.secret.get_secret_value(),
                path=path,
            )
        self.sink = SalesforceSink(self.client)
        self.provisioner = SalesforceProvisioner(self.client)

    async def aclose(self) -> None:
        self.client.close()
