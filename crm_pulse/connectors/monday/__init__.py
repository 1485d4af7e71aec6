"""The monday CRM connector: our own async httpx client for monday's GraphQL API v2.

Pull: ``items_page`` / ``next_items_page`` ordered by last update, restarting from the last
``updated_at`` when a cursor expires, and a periodic id reconciliation for deletes and archives
(:mod:`.source`); receive: board webhooks with the URL challenge answered, verified by a JWT
(integration webhooks) or a URL token (:mod:`.webhooks`); write: one coalesced
``change_multiple_column_values`` per item (:mod:`.sink`); provision: numbers columns
(:mod:`.provisioner`); settings: :mod:`.settings`. The simulator used by tests and the sandbox
is :mod:`crm_pulse.sandbox.monday`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import Connector, ConnectorSettings
from .client import MondayClient
from .mapping import BoardColumns, MondayMapper
from .provisioner import MondayProvisioner
from .settings import MondaySettings
from .sink import MondayReader, MondaySink
from .source import MondaySource
from .webhooks import MondayReceiver

__all__ = [
    "BoardColumns",
    "MondayClient",
    "MondayConnector",
    "MondayMapper",
    "MondayProvisioner",
    "MondayReader",
    "MondayReceiver",
    "MondaySettings",
    "MondaySink",
    "MondaySource",
]


class MondayConnector(Connector):
    kind: ClassVar[str] = "monday"
    settings_model: ClassVar[type[ConnectorSettings]] = MondaySettings

    def __init__(self, name: str, settings: Any) -> None:
        super().__init__(name, settings)
        if not isinstance(settings, MondaySettings):
            settings = MondaySettings.model_validate(settings)
        self.poll_interval = settings.poll_interval
        self.client = MondayClient(settings)
        self.columns = BoardColumns(self.client)
        self.mapper = MondayMapper(settings, name, self.columns)
        self.source = MondaySource(self.client, self.mapper, self.columns, settings)
        self.receiver = MondayReceiver(
            self.client,
            self.mapper,
            signing_secret=settings.signing_secret.get_secret_value()
            if settings.signing_secret
            else None,
            audience=settings.webhook_url,
            token=settings.webhook_token.get_secret_value() if settings.webhook_token else None,
            path="/webhooks/monday" if name == "monday" else f"/webhooks/{name}",
        )
        self.sink = MondaySink(self.client, self.columns, settings)
        self.reader = MondayReader(self.client, self.columns, settings)
        self.provisioner = MondayProvisioner(self.client, self.columns, settings)

    async def aclose(self) -> None:
        await self.client.aclose()
