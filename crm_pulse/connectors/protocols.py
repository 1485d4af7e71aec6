"""What a connector is: six small protocols, each optional.

* :class:`Source` pulls change events: a full ``backfill`` and an incremental ``poll``, both
  from a cursor that is plain JSON data the runtime stores with the events (dlt-style: the
  cursor is data, not hidden state).
* :class:`WebhookReceiver` verifies and parses a vendor's webhook request into events.
* :class:`Sink` writes a batch of custom-field values and reports per-record results.
* :class:`FieldProvisioner` makes sure the custom fields the write-back rules need exist.
* :class:`FieldReader` reads written fields back (``crm-pulse audit``), and
  :class:`FieldTypeChecker` finds target fields of a type that cannot hold a number.
* :class:`AccessChecker` tries the optional permissions a source goes on without (a scope it
  only warns about at run time), for ``crm-pulse doctor``.

A connector is a :class:`Connector` subclass registered in the ``crm_pulse.connectors``
entry-point group (built-in kinds too, in crm-pulse's own ``pyproject.toml``). It declares its
``kind`` and its ``settings_model`` (a :class:`~crm_pulse.config.connectors.ConnectorSettings`
subclass, which validates its section of the deployment file); it is built as
``cls(name, settings)`` with the validated settings, and its attributes ``source``,
``receiver``, ``sink``, ``provisioner``, ``reader``, ``type_checker`` and ``access`` are None
where it has no such part.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..config.connectors import ConnectorSettings
from ..metrics.events import Event

__all__ = [
    "AccessCheck",
    "AccessChecker",
    "BadRecord",
    "Connector",
    "Cursor",
    "FieldKey",
    "FieldProvisioner",
    "FieldReader",
    "FieldSpec",
    "FieldTypeChecker",
    "FieldWrite",
    "Page",
    "ReceiverBase",
    "Sink",
    "Source",
    "WebhookReceiver",
    "WebhookRequest",
    "WriteResult",
]

Cursor = dict[str, Any]
"""A source's position: JSON-able data (times, ids), stored by the runtime."""


@dataclass(frozen=True)
class BadRecord:
    """A record the source could not turn into an event: skipped, and kept with its reason.

    A source reports bad records in the :class:`Page` that passed them (``skipped``), so the
    runtime records them in the same transaction as the page's events and cursor: the rest of
    the page goes on, nothing is dropped silently, and the record is not read again. (A
    failure of the whole call is an error instead: :class:`~crm_pulse.errors.RetriableError`
    to try again later, :class:`~crm_pulse.errors.FatalError` to stop.)
    """

    object: str
    """The CRM's object (``deals``, ``Opportunity``) or the canonical one."""
    id: str
    """The record's id in the CRM ('' if it has none)."""
    reason: str
    """Why it could not be mapped (never a secret)."""
    where: str = ""
    """Where, if more precise than the record (``field amount``, ``line 12``)."""

    def __str__(self) -> str:
        place = f"{self.object} {self.id}".strip()
        return f"{place} ({self.where}): {self.reason}" if self.where else f"{place}: {self.reason}"


@dataclass(frozen=True)
class Page:
    """Events pulled in one step, the cursor to resume after them, and the records of the step
    that could not be mapped."""

    events: Sequence[Event]
    cursor: Cursor
    skipped: Sequence[BadRecord] = ()


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
    """Pulls change events from a CRM, page by page. A record that cannot be mapped goes in
    its page's ``skipped`` (:class:`BadRecord`); a failure of the whole call is raised
    (:class:`~crm_pulse.errors.RetriableError`, :class:`~crm_pulse.errors.FatalError`)."""

    def backfill(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        """Every record from the beginning (or from ``cursor`` if a backfill was interrupted)."""

    def poll(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        """Records changed since ``cursor``."""


@runtime_checkable
class WebhookReceiver(Protocol):
    """Turns a vendor's webhook request into canonical events.

    The HTTP server answers in this order: a body over ``max_body_bytes`` gets 413 before it is
    read; :meth:`verify` failing gets 401 (:class:`~crm_pulse.errors.Unauthorized`) or 400
    (:class:`~crm_pulse.errors.DataError`); then the request is stored durably and answered
    200 (with :meth:`ack_response` if it gives one) -- or, if it could not be stored, 503 after
    :meth:`release`. :meth:`parse` runs later, from the stored copy.
    :class:`ReceiverBase` gives the optional members their defaults.
    """

    path: str
    """The URL path the server routes to this receiver (``/webhooks/<name>``)."""

    @property
    def max_body_bytes(self) -> int | None:
        """Largest body accepted (413 above it); None: the server's own limit."""

    @property
    def replay_window(self) -> float:
        """Seconds the runtime remembers a stored request, so that an exact repeat is answered
        as a duplicate and not stored again: at least twice the signature's tolerance."""

    def verify(self, request: WebhookRequest) -> None:
        """Raise :class:`~crm_pulse.errors.Unauthorized` (with the reason) if not genuine."""

    async def parse(self, request: WebhookRequest) -> list[Event]:
        """The events the request carries (may fetch full records)."""

    def release(self, request: WebhookRequest) -> None:
        """Forget a verified request that could not be stored (replay caches), so that the
        sender's retry is accepted."""

    def ack_response(self, request: WebhookRequest) -> tuple[str, bytes] | None:
        """(content type, body) of the answer to a stored request, for vendors that need a
        particular acknowledgement (Salesforce's SOAP ``Ack``); None: ``{"accepted": true}``."""


class ReceiverBase:
    """Defaults of a :class:`WebhookReceiver`'s optional members; subclass and override."""

    path: str = ""
    max_body_bytes: int | None = None
    replay_window: float = 600.0

    def release(self, request: WebhookRequest) -> None:
        """Nothing to forget."""

    def ack_response(self, request: WebhookRequest) -> tuple[str, bytes] | None:
        """The default JSON acknowledgement."""
        return None


@runtime_checkable
class Sink(Protocol):
    """Writes custom-field values in vendor-sized batches."""

    max_batch: int
    """Writes the writer hands over per call of :meth:`write` (a round)."""
    rounds_in_flight: int
    """Rounds the writer may have in flight at once (at least 1). 1: each round is settled
    before the next is handed over -- for a vendor that wants one call after the other
    (Salesforce's record locks, monday's mutations). More keeps the vendor busy while a round
    settles; the sink's client must then hold every call under the vendor's limits itself
    (a semaphore for calls in flight, a rolling window for calls per window). A field is never
    in two rounds at once, so its values still reach the CRM in order."""

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


@runtime_checkable
class FieldTypeChecker(Protocol):
    """Says which existing custom fields cannot hold a number (``crm-pulse doctor``)."""

    async def unfit(self, fields: Sequence[FieldSpec]) -> dict[tuple[str, str], str]:
        """(object, field) -> why that existing field cannot hold the rule's value (its type);
        fields that fit, or do not exist, are left out."""


@dataclass(frozen=True)
class AccessCheck:
    """The outcome of trying one optional permission (``crm-pulse doctor`` prints it)."""

    what: str
    """The permission, as the vendor names it (``owners (crm.objects.owners.read)``)."""
    ok: bool
    detail: str
    todo: str = ""
    """What to do when it is not granted."""


@runtime_checkable
class AccessChecker(Protocol):
    """Tries the permissions a connector uses but goes on without (``crm-pulse doctor``):
    without them a part of the metrics stays empty, with a warning in the log only."""

    async def check(self) -> list[AccessCheck]:
        """Try each one with a read; write nothing. A refused call is a result, not an error."""


FieldKey = tuple[str, str, str]
"""(object, record id, field) of one custom field on one record."""


@runtime_checkable
class FieldReader(Protocol):
    """Reads custom-field values back (``crm-pulse audit`` compares them with what was written)."""

    async def read(self, fields: Sequence[FieldKey]) -> dict[FieldKey, float | int | str | None]:
        """The value each field holds now: a number, None when empty, or the CRM's text when it
        is not a number; a field whose record or field does not exist is left out."""


class Connector:
    """Base class of every connector, built in or plugin.

    Declare ``kind`` (the entry point's name) and ``settings_model``; in ``__init__`` build the
    parts you have (``source``, ``receiver``, ``sink``, ``provisioner``, ``reader``,
    ``type_checker``; the others stay None)
    and set ``poll_interval`` from the settings. The runtime builds it as ``cls(name, settings)``
    with the validated settings, uses only what is declared here, and awaits :meth:`aclose` at
    the end. Building must not touch the network (``crm-pulse check`` builds every connector).
    """

    kind: ClassVar[str] = ""
    settings_model: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    """Validates the connector's section of the deployment file (default: only ``name``)."""
    can_write: ClassVar[bool] = True
    """False for a connector that only receives: write-back rules may not target it."""
    poll_interval: float = 60.0
    """Seconds between two polls of ``source`` (set it from the settings)."""
    source: Source | None = None
    """Pulls changes (backfill and poll)."""
    receiver: WebhookReceiver | None = None
    """Receives the CRM's webhooks, at ``receiver.path`` on the HTTP server."""
    sink: Sink | None = None
    """Writes metric values into custom fields."""
    provisioner: FieldProvisioner | None = None
    """Creates the custom fields the write-back rules need."""
    reader: FieldReader | None = None
    """Reads the written fields back, for ``crm-pulse audit``."""
    type_checker: FieldTypeChecker | None = None
    """Finds target fields of a type that cannot hold a number (``doctor``)."""
    access: AccessChecker | None = None
    """Tries the optional permissions the source goes on without (``doctor``)."""

    def __init__(self, name: str, settings: Any) -> None:
        self.name = name
        self.settings = settings

    async def aclose(self) -> None:
        """Release clients and connections."""
