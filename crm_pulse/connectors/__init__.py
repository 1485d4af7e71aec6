"""The connector kit: everything a connector -- built in or a plugin -- is made of.

A connector is a folder (a package) that owns everything about one CRM: ``settings.py`` (its
section of the deployment file), ``client.py`` (HTTP, errors translated once, retries with
:func:`retrying`), ``mapping.py``, ``source.py``, ``webhooks.py``, ``sink.py``,
``provisioner.py``, and a :class:`Connector` subclass registered in the ``crm_pulse.connectors``
entry-point group. Its simulator lives in :mod:`crm_pulse.sandbox` (a plugin ships its own) and
it proves itself with the shipped suite :mod:`crm_pulse.sandbox.conformance`.
``docs/writing-a-connector.md`` walks through a complete one. The built-in connectors use only
what is exported here.

Settings
    :class:`ConnectorSettings` (every connector: ``name``), :class:`VendorSettings` (plus
    ``poll_interval``, ``backfill_since``, ``timeout``, ``ca_cert``); field types
    :class:`ConfigModel` (the strict base of nested settings), :data:`Secret` (``${ENV}`` only, a ``SecretStr``: call ``get_secret_value()`` where the
    client needs it, never log it), :data:`Duration` (``30s`` -> 30.0), :data:`HttpUrl`;
    mappings of CRM values to canonical ones (:class:`DealTypeMapping`, ...).
Parts (each optional; declared in :mod:`.protocols`)
    :class:`Source` (``backfill``/``poll`` -> :class:`Page`), :class:`WebhookReceiver`
    (:class:`ReceiverBase` gives the optional members), :class:`Sink`,
    :class:`FieldProvisioner`; :class:`FieldCache` (the refresh policy of a cache of the
    CRM's field names -> ids: read again when old, and at once for an unknown name).
Events
    :func:`upsert`, :func:`delete`, :data:`CANONICAL_FIELDS`, :func:`map_records`,
    :func:`event_from_json`.
Throughput
    :func:`read_ahead` (the next page's request in flight while this page is mapped: one
    request per cursor at a time, never more), :func:`start_reading` (a read that does not
    depend on another one starts beside it: its first request leaves at once), :class:`RollingWindow` (at most n calls started
    per rolling window, shared by concurrent callers, from :mod:`crm_pulse.retry`; each call's
    :class:`Counted` entry is told when it left and was answered).
Failures, by what the caller should do (:mod:`crm_pulse.errors`)
    one bad record -> :class:`BadRecord` in ``Page.skipped`` (skipped and quarantined, the page
    goes on); the whole call failed but may work later -> :class:`RetriableError` /
    :class:`RateLimited` (with ``retry_after``); cannot go on -> :class:`FatalError`; a forged
    webhook -> :class:`Unauthorized`; malformed input -> :class:`DataError`; settings only the
    constructor can check -> :class:`ConfigError` with :class:`ConfigProblem` paths inside the
    connector's section.
"""

from ..config.base import ConfigModel, DealStatus, HttpUrl, TicketStatus
from ..config.connectors import ConnectorSettings, VendorSettings
from ..config.durations import Duration
from ..config.mappings import (
    ActivityTypeMapping,
    DealTypeMapping,
    FieldOverrides,
    LifecycleMapping,
    SurveyTypeMapping,
)
from ..config.secrets import Secret
from ..errors import (
    ConfigError,
    ConfigProblem,
    CrmPulseError,
    DataError,
    FatalError,
    RateLimited,
    RetriableError,
    SkippableError,
    Unauthorized,
    unreachable_cause,
)
from ..metrics.events import Event
from ..retry import Backoff, Counted, RollingWindow, retrying, wait_from_headers
from ..safejson import MAX_DEPTH as MAX_JSON_DEPTH
from ..safejson import depth_of as json_depth
from ..safejson import loads as load_json
from .canonical import (
    CANONICAL_FIELDS,
    FieldType,
    delete,
    event_from_json,
    iso_time,
    make_event,
    map_records,
    time_ms,
    upsert,
    user_record,
)
from .fieldcache import FieldCache, RefreshPolicy
from .protocols import (
    AccessCheck,
    AccessChecker,
    BadRecord,
    Connector,
    Cursor,
    FieldKey,
    FieldProvisioner,
    FieldReader,
    FieldSpec,
    FieldTypeChecker,
    FieldWrite,
    Page,
    ReceiverBase,
    Sink,
    Source,
    WebhookReceiver,
    WebhookRequest,
    WriteResult,
)
from .readahead import StartedReading, read_ahead, start_reading
from .readback import held_value
from .rejects import reject

__all__ = [
    "CANONICAL_FIELDS",
    "MAX_JSON_DEPTH",
    "AccessCheck",
    "AccessChecker",
    "ActivityTypeMapping",
    "Backoff",
    "BadRecord",
    "ConfigError",
    "ConfigModel",
    "ConfigProblem",
    "Connector",
    "ConnectorSettings",
    "Counted",
    "CrmPulseError",
    "Cursor",
    "DataError",
    "DealStatus",
    "DealTypeMapping",
    "Duration",
    "Event",
    "FatalError",
    "FieldCache",
    "FieldKey",
    "FieldOverrides",
    "FieldProvisioner",
    "FieldReader",
    "FieldSpec",
    "FieldType",
    "FieldTypeChecker",
    "FieldWrite",
    "HttpUrl",
    "LifecycleMapping",
    "Page",
    "RateLimited",
    "ReceiverBase",
    "RefreshPolicy",
    "RetriableError",
    "RollingWindow",
    "Secret",
    "Sink",
    "SkippableError",
    "Source",
    "StartedReading",
    "SurveyTypeMapping",
    "TicketStatus",
    "Unauthorized",
    "VendorSettings",
    "WebhookReceiver",
    "WebhookRequest",
    "WriteResult",
    "delete",
    "event_from_json",
    "held_value",
    "iso_time",
    "json_depth",
    "load_json",
    "make_event",
    "map_records",
    "read_ahead",
    "reject",
    "retrying",
    "start_reading",
    "time_ms",
    "unreachable_cause",
    "upsert",
    "user_record",
    "wait_from_headers",
]
