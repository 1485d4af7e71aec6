"""crm-pulse connector for TinyCRM: the example plugin of docs/writing-a-connector.md."""

from __future__ import annotations

from typing import Any, ClassVar

from crm_pulse.connectors import Connector, ConnectorSettings

from .client import TinyCrmClient
from .provisioner import TinyCrmProvisioner
from .settings import TinyCrmSettings
from .sink import TinyCrmSink
from .source import TinyCrmSource, start_of
from .webhooks import TinyCrmReceiver

__all__ = ["TinyCrmConnector", "TinyCrmSettings"]


class TinyCrmConnector(Connector):
    kind: ClassVar[str] = "tinycrm"
    settings_model: ClassVar[type[ConnectorSettings]] = TinyCrmSettings

    def __init__(self, name: str, settings: Any) -> None:
        if not isinstance(settings, TinyCrmSettings):
            settings = TinyCrmSettings.model_validate(settings)
        super().__init__(name, settings)
        self.poll_interval = settings.poll_interval
        self.client = TinyCrmClient(settings)
        self.source = TinyCrmSource(self.client, name, start_of(settings.backfill_since))
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        self.receiver = TinyCrmReceiver(name, secret, f"/webhooks/{name}")
        self.sink = TinyCrmSink(self.client)
        self.provisioner = TinyCrmProvisioner(self.client)

    async def aclose(self) -> None:
        await self.client.aclose()
