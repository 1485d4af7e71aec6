"""The Salesforce connector (REST API through simple-salesforce).

Pull: SOQL on ``SystemModstamp`` with an overlap window, deletes through ``queryAll``
(:mod:`.source`); receive: Outbound Messages, SOAP with the org id and a shared secret checked
(:mod:`.webhooks`); write: sObject Collections ``PATCH composite/sobjects`` (:mod:`.sink`);
provision: ``describe`` and the Tooling API (:mod:`.provisioner`); settings: :mod:`.settings`.
The simulator used by tests, the sandbox and the demo is :mod:`crm_pulse.sandbox.salesforce`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...config.connectors import ConnectorSettings
from ..protocols import Connector
from .client import ApiBudget, SalesforceClient
from .mapping import SalesforceMapper
from .provisioner import SalesforceProvisioner
from .settings import SalesforceSettings
from .sink import SalesforceSink
from .source import SalesforceSource
from .webhooks import OutboundMessageReceiver

__all__ = [
    "ApiBudget",
    "OutboundMessageReceiver",
    "SalesforceClient",
    "SalesforceConnector",
    "SalesforceMapper",
    "SalesforceProvisioner",
    "SalesforceSettings",
    "SalesforceSink",
    "SalesforceSource",
]


class SalesforceConnector(Connector):
    kind: ClassVar[str] = "salesforce"
    settings_model: ClassVar[type[ConnectorSettings]] = SalesforceSettings

    def __init__(self, name: str, settings: Any) -> None:
        if not isinstance(settings, SalesforceSettings):
            settings = SalesforceSettings.model_validate(settings)
        self.poll_interval = settings.poll_interval
        super().__init__(name, settings)
        self.client = SalesforceClient(settings)
        self.mapper = SalesforceMapper(
            settings.mapping,
            name,
            objects=settings.objects,
            forecasting_quotas=settings.forecasting_quotas,
        )
        self.source = SalesforceSource(self.client, self.mapper, settings)
        path = "/webhooks/salesforce" if name == "salesforce" else f"/webhooks/{name}"
        self.receiver = OutboundMessageReceiver(
            self.mapper, settings.outbound_messages, path=path, client=self.client
        )
        self.sink = SalesforceSink(self.client)
        self.provisioner = SalesforceProvisioner(self.client)

    async def aclose(self) -> None:
        self.client.close()
