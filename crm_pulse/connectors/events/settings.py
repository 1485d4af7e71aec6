"""Settings of the generic signed ingress (``- events: {...}`` in the deployment file)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from ...config.connectors import ConnectorSettings
from ...config.durations import Duration
from ...config.secrets import Secret

__all__ = ["EventsSettings"]


class EventsSettings(ConnectorSettings):
    """The generic ingress (``- events: {...}``): canonical events POSTed as JSON to the HTTP
    server, authenticated by an HMAC-SHA256 signature over a timestamp and the body."""

    KIND: ClassVar[str] = "events"

    secret: Secret = Field(description="The HMAC-SHA256 key shared with the senders.")
    tolerance: Annotated[Duration, Field(gt=0)] = Field(
        default=300.0,
        description="Requests whose signed timestamp is further than this from now are refused "
        "(stale or replayed).",
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, gt=0, description="Largest request body accepted."
    )
    sources: list[str] | None = Field(
        default=None,
        description="``source`` values the events may carry; default: any.",
    )
