"""The generic ``events`` ingress: any system POSTs canonical events, signed with HMAC-SHA256.

Deployment file::

    - events:
        name: ingress
        secret: ${INGRESS_SECRET}
        tolerance: 5m

Senders sign with :func:`sign` (or the recipe in :mod:`.signing`) and POST to ``/events``
(``/events/<name>`` when the connector is not named ``events``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...config.connectors import ConnectorSettings
from ..protocols import Connector
from .parsing import InvalidEvents, ItemProblem
from .settings import EventsSettings
from .signing import HEADER, parse_header, sign, signature
from .webhooks import EventsReceiver, decode_events

__all__ = [
    "HEADER",
    "EventsConnector",
    "EventsReceiver",
    "EventsSettings",
    "InvalidEvents",
    "ItemProblem",
    "decode_events",
    "parse_header",
    "sign",
    "signature",
]


class EventsConnector(Connector):
    kind: ClassVar[str] = "events"
    settings_model: ClassVar[type[ConnectorSettings]] = EventsSettings
    can_write: ClassVar[bool] = False

    def __init__(self, name: str, settings: Any) -> None:
        super().__init__(name, settings)
        if not isinstance(settings, EventsSettings):
            settings = EventsSettings.model_validate(settings)
        path = "/events" if name == "events" else f"/events/{name}"
        self.receiver = EventsReceiver(
            settings.secret.get_secret_value(),
            path=path,
            tolerance=settings.tolerance,
            max_body_bytes=settings.max_body_bytes,
            sources=settings.sources,
        )
