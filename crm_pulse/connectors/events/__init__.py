"""The generic ``events`` ingress: canonical events POSTed as signed JSON by any system.

``- events: {secret: ${INGRESS_SECRET}}`` in the deployment file adds a receiver at ``/events``
(``/events/<name>`` for a connector not named ``events``, so several senders can have their own
secrets). The signature scheme is in :mod:`.signing` and ``docs/ingress.md``. The connector only
receives: it has no source, sink or provisioner.
"""

from __future__ import annotations

from typing import Any

from ...config.models import EventsSettings
from ..protocols import Connector
from .parsing import InvalidEvents, ItemProblem
from .signing import SIGNATURE_HEADER, compute_signature, parse_signature_header, sign
from .webhooks import DEFAULT_PATH, EventsReceiver

__all__ = [
    "DEFAULT_PATH",
    "SIGNATURE_HEADER",
    "EventsConnector",
    "EventsReceiver",
    "InvalidEvents",
    "ItemProblem",
    "compute_signature",
    "parse_signature_header",
    "sign",
]


class EventsConnector(Connector):
    """Connector plugin of kind ``events`` (entry point ``crm_pulse.connectors``)."""

    kind = "events"

    def __init__(self, name: str, settings: Any) -> None:
        if not isinstance(settings, EventsSettings):
            settings = EventsSettings.model_validate({"name": name, **dict(settings)})
        super().__init__(name, settings)
        path = getattr(settings, "path", None) or (
            DEFAULT_PATH if name == "events" else f"{DEFAULT_PATH}/{name}"
        )
        self.receiver: EventsReceiver = EventsReceiver(
            settings.secret,
            path=path,
            tolerance=settings.tolerance,
            max_body_bytes=settings.max_body_bytes,
            sources=settings.sources,
        )
