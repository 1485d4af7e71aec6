"""What a connector is: four small protocols, each optional.

* :class:`Source` pulls change events: a full ``backfill`` and an incremental ``poll``, both
  from a cursor that is plain JSON data the runtime stores with the events (dlt-style: the
  cursor is data, not hidden state).
* :class:`WebhookReceiver` verifies and parses a vendor's webhook request into events.
* :class:`Sink` writes a batch of custom-field values and reports per-record results.
* :class:`FieldProvisioner` makes sure the custom fields the write-back rules need exist.

A connector is a :class:`Connector` subclass registered in the ``crm_pulse.connectors``
entry-point group (built-in kinds too, in crm-pulse's own ``pyproject.toml``). It declares its
``kind`` and its ``settings_model`` (a :class:`~crm_pulse.config.connectors.ConnectorSettings`
subclass, which validates its section of the deployment file); it is built as
``cls(name, settings)`` with the validated settings, and its attributes ``source``,
``receiver``, ``sink`` and ``provisioner`` are None where it has no such part.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..config.connectors import ConnectorSettings
from ..metrics.events import Event

__all__ = [
    "Connector",
    "Cursor",
    "FieldProvisioner",
    "FieldSpec",
    "FieldWrite",
    "Page",
    "Sink",
    "Source",
    "WebhookReceiver",
    "WebhookRequest",
    "WriteResult",
]

Cursor = dict[str, Any]
"""A source's position: JSON-able data (times, ids), stored by the runtime."""


@dataclass(frozen=True)
class Page:
    """Events pulled in one step, and the cursor to resume after them."""

    events: Sequence[Event]
    cursor: Cursor


@dataclass(frozen=True)
class WebhookRequest:
    """An HTTP request as a receiver sees it (already read in full)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    received_at_ms: int

    def header(self, name: str) -> str | None:
        lower = name.lower()
        for k, v in self.headers.items():
            if k.lower() == lower:
                return v
        return None


@dataclass(frozen=True)
class FieldWrite:
    """One value to write: which connector, CRM object, record and custom field."""

    connector: str
    object: str
    record_id: str
    field: str
    value: float | int | None


@dataclass(frozen=True)
class WriteResult:
    """What happened to one write. ``retriable`` failures are tried again later."""

    write: FieldWrite
    ok: bool
    retriable: bool = False
    reason: str = ""
    retry_after: float | None = None


@dataclass(frozen=True)
class FieldSpec:
    """A custom field the write-back rules need: where, its API name, label and unit."""

    object: str
    name: str
    label: str
    unit: str = "number"
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Source(Protocol):
    """Pulls change events from a CRM."""

    def backfill(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        """Every record from the beginning (or from ``cursor`` if a backfill was interrupted)."""

    def poll(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        """Records changed since ``cursor``."""


@runtime_checkable
class WebhookReceiver(Protocol):
    """Turns a vendor's webhook request into canonical events."""

    path: str

    def verify(self, request: WebhookRequest) -> None:
        """Raise :class:`~crm_pulse.errors.Unauthorized` (with the reason) if not genuine."""

    async def parse(self, request: WebhookRequest) -> list[Event]:
        """The events the request carries (may fetch full records)."""


@runtime_checkable
class Sink(Protocol):
    """Writes custom-field values in vendor-sized batches."""

    max_batch: int

    async def write(self, writes: Sequence[FieldWrite]) -> list[WriteResult]:
        """Write at most ``max_batch`` values; one result per write, in order.

        A refusal of the whole call raises :class:`~crm_pulse.errors.RateLimited` (with
        ``retry_after`` when the vendor said) or another :class:`~crm_pulse.errors.RetriableError`;
        per-record failures are results with ``ok=False``.
        """


@runtime_checkable
class FieldProvisioner(Protocol):
    """Makes sure custom fields exist."""

    async def missing(self, fields: Sequence[FieldSpec]) -> list[FieldSpec]:
        """The fields that do not exist yet."""

    async def create(self, fields: Sequence[FieldSpec]) -> list[str]:
        """Create them; returns one line per field saying what was done."""


class Connector:
    """Base class of connector plugins: declare ``kind`` and override the parts you have."""

    kind: ClassVar[str] = ""
    settings_model: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    """Validates the connector's section of the deployment file (default: only ``name``)."""
    can_write: ClassVar[bool] = True
    """False for a connector that only receives: write-back rules may not target it."""
    source: Source | None = None
    receiver: WebhookReceiver | None = None
    sink: Sink | None = None
    provisioner: FieldProvisioner | None = None

    def __init__(self, name: str, settings: Any) -> None:
        self.name = name
        self.settings = settings

    async def aclose(self) -> None:
        """Release clients and connections."""
