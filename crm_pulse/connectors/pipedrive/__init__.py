"""The Pipedrive connector: our own async httpx client for API v2 (there is no official SDK).

Pull: ``updated_since`` polling with cursor paging (:mod:`.source`); receive: webhooks v2 with
HTTP Basic (:mod:`.webhooks`); write: one coalesced PATCH per record (:mod:`.sink`); provision:
custom fields (:mod:`.provisioner`); settings: :mod:`.settings`. The simulator used by tests
and the sandbox is :mod:`crm_pulse.sandbox.pipedrive`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...config.connectors import ConnectorSettings
from ..protocols import Connector
from .client import PipedriveClient
from .mapping import FieldKeys, PipedriveMapper
from .provisioner import PipedriveProvisioner
from .settings import PipedriveSettings
from .sink import PipedriveSink
from .source import PipedriveSource
from .webhooks import PipedriveReceiver

__all__ = [
    "FieldKeys",
    "PipedriveClient",
    "PipedriveConnector",
    "PipedriveMapper",
    "PipedriveProvisioner",
    "PipedriveReceiver",
    "PipedriveSettings",
    "PipedriveSink",
    "PipedriveSource",
]


class PipedriveConnector(Connector):
    kind: ClassVar[str] = "pipedrive"
    settings_model: ClassVar[type[ConnectorSettings]] = PipedriveSettings

    def __init__(self, name: str, settings: Any) -> None:
        super().__init__(name, settings)
        if not isinstance(settings, PipedriveSettings):
            settings = PipedriveSettings.model_validate(settings)
        self.poll_interval = settings.poll_interval
        self.client = PipedriveClient(settings)
        self.keys = FieldKeys(self.client)
        self.mapper = PipedriveMapper(settings.mapping, name, self.keys)
        self.source = PipedriveSource(self.client, self.mapper, self.keys, settings)
        password = (
            settings.webhook_password.get_secret_value() if settings.webhook_password else None
        )
        path = "/webhooks/pipedrive" if name == "pipedrive" else f"/webhooks/{name}"
        self.receiver = PipedriveReceiver(
            self.client, self.mapper, self.keys, settings.webhook_user, password, path=path
        )
        self.receiver.read_organizations = "organizations" in settings.objects
        self.sink = PipedriveSink(self.client, self.keys, settings.currency)
        self.provisioner = PipedriveProvisioner(self.client, self.keys)

    async def aclose(self) -> None:
        await self.client.aclose()
