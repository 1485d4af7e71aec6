"""The deployment file, as pydantic models.

One YAML file describes a deployment::

    timezone: Europe/Berlin          # IANA name; calendar windows are cut in this zone
    connectors: [...]                # where events come from and where values are written
    metrics: {...}                   # which metrics, user definitions, quotas, spend, goals
    writeback: [...]                 # metric + window + group -> CRM object, record and field
    runtime: {...}                   # embedded (SQLite) or Faust; addresses, batching

Every model forbids unknown keys, so a misspelled key is an error naming it. Credentials are
:data:`~crm_pulse.config.secrets.Secret` fields, written as ``${ENV}`` references. Durations are
written ``30s``, ``5m``, ``250ms`` and held in seconds. ``crm_pulse.config.loader`` reads the
file and turns every validation error into a problem with its path, file and line;
:meth:`Deployment.check_references` adds the checks that need more than one section (a write-back
rule's metric, group and connector; names in the metric definitions).

Connector entries are keyed by their kind (``- hubspot: {...}``); each built-in kind has its
own settings model. Kinds added by plugins (the ``crm_pulse.connectors`` entry-point group) are
accepted as a plain mapping that the plugin validates itself when it is built.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from ..errors import ConfigError, ConfigProblem
from ..metrics.calendar import CURRENT, WindowSpec, parse_window_spec
from ..metrics.catalog import (
    Catalog,
    build_catalog,
    builtin_definitions,
    problems_from_validation,
)
from ..metrics.definitions import Definitions, GoalDef, MeasureDef, MetricDef, group_of
from ..metrics.engine import DEFAULT_WINDOWS
from ..metrics.events import BUILTIN_OBJECTS, Event
from ._paths import Path as KeyPath
from ._paths import format_path, parse_path
from .durations import Duration, format_duration
from .secrets import Secret, secrets_to_secretstr

__all__ = [
    "BUILTIN_KINDS",
    "CONFIG_SOURCE",
    "ActivityTypeMapping",
    "ConfigModel",
    "ConnectorEntry",
    "ConnectorSettings",
    "DealTypeMapping",
    "Deployment",
    "EventsSettings",
    "FaustSettings",
    "FieldOverrides",
    "HubSpotMapping",
    "HubSpotSettings",
    "LifecycleMapping",
    "MetricsSection",
    "OutboundMessages",
    "PipedriveMapping",
    "PipedriveSettings",
    "QuotaEntry",
    "RecordMatch",
    "RetrySettings",
    "RuntimeSection",
    "SalesforceMapping",
    "SalesforceSettings",
    "SpendEntry",
    "SurveyTypeMapping",
    "WritebackRule",
    "WritebackTarget",
    "plugin_kinds",
]

CONFIG_SOURCE = "config"
"""The ``source`` of events made from the configuration (quotas, spend)."""

BUILTIN_KINDS = ("hubspot", "salesforce", "pipedrive", "events")
PLUGIN_GROUP = "crm_pulse.connectors"


class ConfigModel(BaseModel):
    """Base of every section: unknown keys are errors, values are immutable, and a
    ValidationError's text never shows the input (it may hold credentials)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


# ------------------------------------------------------------------ small value types


def _id_text(value: Any) -> Any:
    """Record and owner ids are text; YAML reads ``12345`` as a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Id = Annotated[str, BeforeValidator(_id_text), Field(min_length=1)]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s) URL like https://example.com, got {value!r}")
    return value.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]


def _context(info: ValidationInfo) -> Mapping[str, Any]:
    return info.context if isinstance(info.context, Mapping) else {}


def _relative_to_file(value: Path, info: ValidationInfo) -> Path:
    """A relative path in the file is relative to the file's directory, not the working one."""
    base = _context(info).get("base_dir")
    if base is not None and not value.is_absolute():
        return Path(base) / value
    return value


def _existing_file(value: Path, info: ValidationInfo) -> Path:
    value = _relative_to_file(value, info)
    if _context(info).get("from_file") and not value.is_file():
        raise ValueError(f"no such file: {value}")
    return value


FilePath = Annotated[Path, AfterValidator(_relative_to_file)]
ExistingFile = Annotated[Path, AfterValidator(_existing_file)]


def _connector_name(value: str) -> str:
    if (
        not value
        or not (value[0].isascii() and value[0].islower())
        or not all(c.isascii() and (c.islower() or c.isdigit() or c in "_-") for c in value)
    ):
        raise ValueError(
            f"expected a name of lower-case letters, digits, '-' and '_' starting with a letter, "
            f"got {value!r}"
        )
    if len(value) > 63:
        raise ValueError("a connector name has at most 63 characters")
    return value


ConnectorName = Annotated[str, AfterValidator(_connector_name)]

PeriodKind = Literal["month", "quarter", "year"]
DealType = Literal["new", "upsell", "renewal", "other"]
Lifecycle = Literal["lead", "customer", "other"]
ActivityType = Literal["call", "email", "meeting", "task", "note"]
SurveyType = Literal["nps", "csat"]
DealStatus = Literal["open", "won", "lost"]
TicketStatus = Literal["open", "closed"]


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ------------------------------------------------------------------ mappings (data, not code)


class DealTypeMapping(ConfigModel):
    """Where a deal's canonical ``type`` (new / upsell / renewal / other) comes from."""

    property: str = Field(
        min_length=1, description="The CRM property (field) holding the deal type."
    )
    values: dict[str, DealType] = Field(
        default_factory=dict, description="CRM value -> canonical type."
    )
    default: DealType | None = Field(
        default="other",
        description="Type of a deal whose value is not listed; null leaves the type empty.",
    )


class LifecycleMapping(ConfigModel):
    """Where a contact's canonical ``lifecycle`` (lead / customer / other) comes from."""

    property: str = Field(min_length=1, description="The CRM property holding the stage.")
    values: dict[str, Lifecycle] = Field(
        default_factory=dict, description="CRM value -> canonical lifecycle."
    )
    default: Lifecycle | None = Field(default="other", description="For values not listed.")


class ActivityTypeMapping(ConfigModel):
    """Where an activity's canonical ``type`` (call / email / meeting / task / note) comes from."""

    property: str = Field(min_length=1, description="The CRM property holding the type.")
    values: dict[str, ActivityType] = Field(
        default_factory=dict, description="CRM value -> canonical activity type."
    )
    default: ActivityType | None = Field(default="task", description="For values not listed.")


class SurveyTypeMapping(ConfigModel):
    """Where a survey response's canonical ``survey`` (nps / csat) comes from."""

    property: str = Field(min_length=1, description="The CRM property holding the survey kind.")
    values: dict[str, SurveyType] = Field(
        default_factory=dict, description="CRM value -> canonical survey kind."
    )
    default: SurveyType | None = Field(
        default=None, description="For values not listed; null skips the response."
    )


def _canonical_fields(obj: str) -> AfterValidator:
    schema = BUILTIN_OBJECTS[obj]

    def check(value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name not in schema:
                raise ValueError(
                    f"{obj} has no canonical field {name!r}{_did_you_mean(name, list(schema))} "
                    f"(fields: {', '.join(schema)})"
                )
        return value

    return AfterValidator(check)


class FieldOverrides(ConfigModel):
    """Per canonical object: canonical field -> the CRM property to read it from.

    Each connector has defaults for every field (metrics-spec section 1); list here only the
    fields your CRM keeps elsewhere, for example ``account: {churned_at: churn_date__c}``.
    """

    account: Annotated[dict[str, str], _canonical_fields("account")] = Field(
        default_factory=dict, description="Account (company, organization) fields."
    )
    contact: Annotated[dict[str, str], _canonical_fields("contact")] = Field(
        default_factory=dict, description="Contact (person) fields."
    )
    deal: Annotated[dict[str, str], _canonical_fields("deal")] = Field(
        default_factory=dict, description="Deal (opportunity) fields."
    )
    ticket: Annotated[dict[str, str], _canonical_fields("ticket")] = Field(
        default_factory=dict, description="Ticket (case) fields."
    )
    activity: Annotated[dict[str, str], _canonical_fields("activity")] = Field(
        default_factory=dict, description="Activity (engagement, task, event) fields."
    )
    survey_response: Annotated[dict[str, str], _canonical_fields("survey_response")] = Field(
        default_factory=dict, description="Survey response fields."
    )


# ------------------------------------------------------------------ connectors


class ConnectorSettings(ConfigModel):
    """Settings every connector kind has."""

    KIND: ClassVar[str] = ""

    name: ConnectorName = Field(
        default="",
        description="Unique name of this connector: the ``source`` of its events and what "
        "write-back targets refer to. Default: the kind (hubspot, salesforce, ...).",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "name" not in data:
            return {**data, "name": cls.KIND}
        return data


class VendorSettings(ConnectorSettings):
    """Settings shared by the CRM connectors (HubSpot, Salesforce, Pipedrive)."""

    poll_interval: Annotated[Duration, Field(gt=0)] = Field(
        default=60.0, description="How often to poll for changes (the safety net under webhooks)."
    )
    backfill_since: date | None = Field(
        default=None, description="Oldest modification date a backfill pulls; default: all."
    )
    timeout: Annotated[Duration, Field(gt=0)] = Field(
        default=30.0, description="Timeout of one HTTP request."
    )
    ca_cert: ExistingFile | None = Field(
        default=None,
        description="PEM file of a CA to trust instead of the system's (tests, local fakes).",
    )


HubSpotObject = Literal[
    "companies",
    "contacts",
    "deals",
    "tickets",
    "calls",
    "emails",
    "meetings",
    "notes",
    "tasks",
    "feedback_submissions",
]


class HubSpotMapping(ConfigModel):
    """How HubSpot records become canonical records."""

    deal_type: DealTypeMapping = Field(
        default_factory=lambda: DealTypeMapping(
            property="dealtype",
            values={"newbusiness": "new", "existingbusiness": "upsell"},
        ),
        description="Deal property and values giving the canonical deal type.",
    )
    deal_stages: dict[str, DealStatus] = Field(
        default_factory=dict,
        description="Stage id -> open/won/lost, overriding HubSpot's own closed-won and "
        "closed-lost flags of the pipeline stage.",
    )
    pipelines: list[str] | None = Field(
        default=None, description="Deal pipeline ids to include; default: every pipeline."
    )
    ticket_stages: dict[str, TicketStatus] = Field(
        default_factory=dict,
        description="Ticket stage id -> open/closed, overriding the stage's isClosed flag.",
    )
    lifecycle: LifecycleMapping = Field(
        default_factory=lambda: LifecycleMapping(
            property="lifecyclestage",
            values={
                "lead": "lead",
                "marketingqualifiedlead": "lead",
                "salesqualifiedlead": "lead",
                "opportunity": "lead",
                "customer": "customer",
                "evangelist": "customer",
            },
        ),
        description="Contact property and values giving the canonical lifecycle.",
    )
    survey_type: SurveyTypeMapping = Field(
        default_factory=lambda: SurveyTypeMapping(
            property="hs_survey_type", values={"NPS": "nps", "CSAT": "csat"}
        ),
        description="Feedback submission property and values giving the survey kind.",
    )
    fields: FieldOverrides = Field(
        default_factory=FieldOverrides,
        description="Canonical fields read from other properties than the defaults.",
    )


class HubSpotSettings(VendorSettings):
    """A HubSpot portal, through a private app (``- hubspot: {...}``)."""

    KIND: ClassVar[str] = "hubspot"

    access_token: Secret = Field(description="The private app's access token (``${ENV}``).")
    app_secret: Secret | None = Field(
        default=None,
        description="The app's client secret, which signs webhooks (v3 signature). Without it "
        "webhooks are refused and changes arrive by polling only.",
    )
    portal_id: int | None = Field(
        default=None, description="The portal (hub) id; webhooks of other portals are refused."
    )
    base_url: HttpUrl = Field(default="https://api.hubapi.com", description="API base URL.")
    poll_interval: Annotated[Duration, Field(gt=0)] = Field(
        default=30.0, description="How often to poll the search API for changes."
    )
    lookback: Duration = Field(
        default=300.0,
        description="How far back each poll reaches before the cursor: search indexes changes "
        "late, and a lookback catches them.",
    )
    objects: list[HubSpotObject] = Field(
        default_factory=lambda: list(get_args(HubSpotObject)),
        description="HubSpot object types to read (companies, contacts, deals, tickets, calls, "
        "emails, meetings, notes, tasks, feedback_submissions). Default: all.",
    )
    property_group: str = Field(
        default="crm_pulse", min_length=1, description="Property group of the created fields."
    )
    mapping: HubSpotMapping = Field(
        default_factory=HubSpotMapping, description="How records map to canonical ones."
    )


SalesforceObject = Literal["Account", "Contact", "Lead", "Opportunity", "Case", "Task", "Event"]


class SalesforceMapping(ConfigModel):
    """How Salesforce records become canonical records."""

    deal_type: DealTypeMapping = Field(
        default_factory=lambda: DealTypeMapping(
            property="Type",
            values={
                "New Customer": "new",
                "Existing Customer - Upgrade": "upsell",
                "Existing Customer - Replacement": "other",
                "Existing Customer - Downgrade": "other",
                "Renewal": "renewal",
            },
        ),
        description="Opportunity picklist and values giving the canonical deal type "
        "(renewals are usually a custom value: add it here).",
    )
    activity_type: ActivityTypeMapping = Field(
        default_factory=lambda: ActivityTypeMapping(
            property="TaskSubtype",
            values={"Call": "call", "Email": "email", "ListEmail": "email", "Task": "task"},
        ),
        description="Task field and values giving the activity type (Events are meetings).",
    )
    survey_object: str | None = Field(
        default=None,
        description="API name of the custom object holding survey responses "
        "(e.g. Survey_Response__c); its fields are given under fields.survey_response.",
    )
    survey_type: SurveyTypeMapping = Field(
        default_factory=lambda: SurveyTypeMapping(
            property="Survey_Type__c", values={"NPS": "nps", "CSAT": "csat"}
        ),
        description="Survey object field and values giving the survey kind.",
    )
    fields: FieldOverrides = Field(
        default_factory=FieldOverrides,
        description="Canonical fields read from other fields than the defaults.",
    )


class OutboundMessages(ConfigModel):
    """Push path: Salesforce Outbound Messages (SOAP) posted to ``/webhooks/<name>``."""

    organization_id: str = Field(
        min_length=15, max_length=18, description="The org id messages must carry."
    )
    secret: Secret = Field(
        description="Shared secret expected in the endpoint URL's ``token`` query parameter."
    )


class SalesforceSettings(VendorSettings):
    """A Salesforce org through the REST API (``- salesforce: {...}``).

    Authenticate with ``session_id`` (an existing session, as in tests) or with a connected
    app's ``client_id`` and ``client_secret`` (OAuth client-credentials flow).
    """

    KIND: ClassVar[str] = "salesforce"

    instance_url: HttpUrl = Field(description="https://<my-domain>.my.salesforce.com")
    session_id: Secret | None = Field(default=None, description="An access token or session id.")
    client_id: str | None = Field(default=None, description="Connected app consumer key.")
    client_secret: Secret | None = Field(default=None, description="Connected app secret.")
    api_version: str = Field(
        default="59.0", pattern=r"^\d{2,3}\.0$", description="REST API version, like 59.0."
    )
    budget_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of the org's daily API request limit this connector may use; it "
        "pauses when the share is used up.",
    )
    client_id_header: str = Field(
        default="crm-pulse",
        min_length=1,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Client name sent as ``Sforce-Call-Options: client=<name>`` on writes; "
        "changes carrying it are our own and are ignored.",
    )
    overlap: Duration = Field(
        default=120.0,
        description="Each poll re-reads this much before the SystemModstamp cursor (late commits).",
    )
    objects: list[SalesforceObject] = Field(
        default_factory=lambda: list(get_args(SalesforceObject)),
        description="sObjects to read. Default: all of Account, Contact, Lead, Opportunity, "
        "Case, Task and Event.",
    )
    forecasting_quotas: bool = Field(
        default=False, description="Read quotas from ForecastingQuota (Collaborative Forecasts)."
    )
    outbound_messages: OutboundMessages | None = Field(
        default=None, description="Enable the Outbound Messages push path."
    )
    mapping: SalesforceMapping = Field(
        default_factory=SalesforceMapping, description="How records map to canonical ones."
    )

    @field_validator("api_version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"{float(value):.1f}"  # YAML reads 59.0 as a number
        return value

    @model_validator(mode="after")
    def _one_login(self) -> SalesforceSettings:
        client = self.client_id is not None or self.client_secret is not None
        if self.session_id is not None and client:
            raise ValueError("give either session_id or client_id and client_secret, not both")
        if self.session_id is None and not client:
            raise ValueError("give session_id, or client_id and client_secret, to log in")
        if client and (self.client_id is None or self.client_secret is None):
            missing = "client_secret" if self.client_secret is None else "client_id"
            raise ValueError(
                f"client credentials need both client_id and client_secret: {missing} is missing"
            )
        return self


PipedriveObject = Literal["deals", "persons", "organizations", "activities"]


class PipedriveMapping(ConfigModel):
    """How Pipedrive records become canonical records. Custom fields are given by name; the
    connector finds their per-account hash keys."""

    deal_type: DealTypeMapping | None = Field(
        default=None,
        description="Deal custom field (by name) and values giving the deal type; "
        "default: deals have no type.",
    )
    customer_since_field: str | None = Field(
        default=None,
        description="Organization field (by name) holding the date it became a customer; "
        "default: the won time of its first won deal.",
    )
    churned_at_field: str | None = Field(
        default=None, description="Organization field (by name) holding the churn date."
    )
    lifecycle: LifecycleMapping | None = Field(
        default=None, description="Person field and values giving the contact lifecycle."
    )
    activity_type: ActivityTypeMapping = Field(
        default_factory=lambda: ActivityTypeMapping(
            property="type",
            values={
                "call": "call",
                "meeting": "meeting",
                "email": "email",
                "task": "task",
                "deadline": "task",
                "lunch": "meeting",
            },
        ),
        description="Activity type keys giving the canonical activity type.",
    )
    fields: FieldOverrides = Field(
        default_factory=FieldOverrides,
        description="Canonical fields read from other fields (by name) than the defaults.",
    )


class PipedriveSettings(VendorSettings):
    """A Pipedrive company account through API v2 (``- pipedrive: {...}``)."""

    KIND: ClassVar[str] = "pipedrive"

    api_token: Secret = Field(description="API token (sent as ``x-api-token``).")
    base_url: HttpUrl = Field(
        default="https://api.pipedrive.com",
        description="API base URL (or https://<company>.pipedrive.com).",
    )
    webhook_user: str | None = Field(
        default=None, min_length=1, description="HTTP Basic user that webhooks must carry."
    )
    webhook_password: Secret | None = Field(
        default=None, description="HTTP Basic password that webhooks must carry."
    )
    overlap: Duration = Field(
        default=60.0, description="Each poll re-reads this much before the update-time cursor."
    )
    budget_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of the company's daily API token budget this connector may use.",
    )
    objects: list[PipedriveObject] = Field(
        default_factory=lambda: list(get_args(PipedriveObject)),
        description="Entities to read: deals, persons, organizations, activities. Default: all.",
    )
    mapping: PipedriveMapping = Field(
        default_factory=PipedriveMapping, description="How records map to canonical ones."
    )

    @model_validator(mode="after")
    def _webhook_pair(self) -> PipedriveSettings:
        if (self.webhook_user is None) != (self.webhook_password is None):
            raise ValueError(
                "webhooks need both webhook_user and webhook_password (or neither: polling only)"
            )
        return self


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


ConnectorSettingsType = HubSpotSettings | SalesforceSettings | PipedriveSettings | EventsSettings


@cache
def plugin_kinds() -> frozenset[str]:
    """Connector kinds registered by installed plugins (entry-point group crm_pulse.connectors)."""
    return frozenset(ep.name for ep in entry_points(group=PLUGIN_GROUP))


class ConnectorEntry(BaseModel):
    """One item of ``connectors``: a mapping with one key, the connector kind.

    Built-in kinds (hubspot, salesforce, pipedrive, events) are validated by their own model.
    A kind registered by a plugin is accepted as a plain mapping (values read from ``${ENV}``
    references become ``SecretStr``); the plugin validates its settings when it is built.
    """

    model_config = ConfigDict(extra="allow", frozen=True, hide_input_in_errors=True)
    __pydantic_extra__: dict[str, dict[str, Any]] = Field(init=False)

    hubspot: HubSpotSettings | None = Field(default=None, description="A HubSpot portal.")
    salesforce: SalesforceSettings | None = Field(default=None, description="A Salesforce org.")
    pipedrive: PipedriveSettings | None = Field(
        default=None, description="A Pipedrive company account."
    )
    events: EventsSettings | None = Field(
        default=None, description="The generic signed HTTP ingress of canonical events."
    )

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {data: None}
        if not isinstance(data, dict) or not data:
            raise ValueError(
                "expected a mapping with one key, the connector kind: - hubspot: {...}"
            )
        known = [*BUILTIN_KINDS, *sorted(plugin_kinds() - set(BUILTIN_KINDS))]
        if len(data) > 1:
            keys = [str(k) for k in data]
            kinds = [k for k in keys if k in known]
            if len(kinds) == 1:
                others = ", ".join(k for k in keys if k != kinds[0])
                raise ValueError(
                    f"a connector entry has one key, its kind ({kinds[0]}): indent {others} "
                    f"under {kinds[0]}"
                )
            raise ValueError(f"a connector entry has one key, its kind; found {', '.join(keys)}")
        ((kind, settings),) = data.items()
        if settings is None:
            settings = {}
        if kind in BUILTIN_KINDS:
            return {kind: settings}
        if kind in known:
            if not isinstance(settings, dict):
                raise ValueError(f"the settings of a {kind} connector must be a mapping")
            if "name" in settings:
                _connector_name(str(settings["name"]))
            return {kind: secrets_to_secretstr(settings)}
        raise ValueError(
            f"unknown connector kind {kind!r}{_did_you_mean(str(kind), known)}; known kinds: "
            f"{', '.join(known)} (plugins add kinds through the {PLUGIN_GROUP!r} entry points)"
        )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield self.kind, self.settings

    @model_serializer(mode="wrap")
    def _only_kind(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k == self.kind}
        return data

    @property
    def kind(self) -> str:
        """hubspot, salesforce, pipedrive, events or a plugin's kind."""
        for kind in BUILTIN_KINDS:
            if getattr(self, kind) is not None:
                return kind
        return next(iter(self.__pydantic_extra__ or {"": {}}))

    @property
    def settings(self) -> ConnectorSettingsType | dict[str, Any]:
        """The kind's settings model, or a plugin's mapping."""
        kind = self.kind
        if kind in BUILTIN_KINDS:
            value: ConnectorSettingsType = getattr(self, kind)
            return value
        return (self.__pydantic_extra__ or {}).get(kind, {})

    @property
    def name(self) -> str:
        """The connector's name (default: its kind)."""
        settings = self.settings
        if isinstance(settings, ConnectorSettings):
            return settings.name
        return str(settings.get("name") or self.kind)

    @property
    def can_write(self) -> bool:
        """False for the events ingress, which only receives."""
        return self.kind != "events"


# ------------------------------------------------------------------ metrics


def _check_period_start(kind: str, start: date) -> str | None:
    months = {"month": range(1, 13), "quarter": (1, 4, 7, 10), "year": (1,)}[kind]
    if start.day == 1 and start.month in months:
        return None
    first = {
        "month": "the first day of a month",
        "quarter": "the first day of a quarter (Jan, Apr, Jul or Oct 1)",
        "year": "January 1",
    }[kind]
    return f"a {kind} starts on {first}, got {start.isoformat()}"


class QuotaEntry(ConfigModel):
    """A rep's quota for one calendar period (the same as a ``quota`` event)."""

    owner_id: Id = Field(description="The rep (CRM user / owner id).")
    period: PeriodKind = Field(description="month, quarter or year.")
    period_start: date = Field(description="First day of the period, like 2026-04-01.")
    amount: Decimal = Field(ge=0, description="Quota in the reporting currency.")

    @model_validator(mode="after")
    def _aligned(self) -> QuotaEntry:
        problem = _check_period_start(self.period, self.period_start)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def record_id(self) -> str:
        return f"{self.owner_id}:{self.period}:{self.period_start.isoformat()}"


class SpendEntry(ConfigModel):
    """Money spent on acquiring or retaining customers in one period (a ``spend`` event)."""

    category: Literal["acquisition", "retention"] = Field(description="acquisition or retention.")
    period: PeriodKind = Field(description="month, quarter or year.")
    period_start: date = Field(description="First day of the period, like 2026-01-01.")
    amount: Decimal = Field(ge=0, description="Amount in the reporting currency.")

    @property
    def record_id(self) -> str:
        return f"{self.category}:{self.period}:{self.period_start.isoformat()}"


DEFAULT_ENGAGEMENT_WEIGHTS: dict[ActivityType, float] = {
    "call": 3,
    "meeting": 5,
    "email": 1,
    "task": 0,
    "note": 0,
}


def _metric_name(value: str) -> str:
    if not value.isidentifier() or not value.isascii():
        raise ValueError(f"a metric name is letters, digits and '_', got {value!r}")
    return value


class MetricsSection(ConfigModel):
    """Which metrics to compute, your own definitions, and the data metrics need (quotas, spend).

    ``params``, ``measures``, ``metrics`` and ``goals`` use the definition language of the
    built-in catalog (``crm_pulse/metrics/catalog.yaml``, documented in
    ``crm_pulse/metrics/definitions.py``); a definition with a built-in name replaces it.
    """

    enable: Literal["all"] | list[str] = Field(
        default="all", description="Built-in metrics to compute: 'all' or a list of names."
    )
    disable: list[str] = Field(
        default_factory=list, description="Metrics (built-in or yours) not to compute."
    )
    params: dict[str, float] = Field(
        default_factory=dict, description="Parameters ($name in definitions); override built-ins."
    )
    measures: dict[str, MeasureDef] = Field(
        default_factory=dict, description="Your measures (what to count or sum, and when)."
    )
    metrics: dict[Annotated[str, AfterValidator(_metric_name)], MetricDef] = Field(
        default_factory=dict, description="Your metrics (expressions over measures)."
    )
    goals: list[GoalDef] = Field(
        default_factory=list, description="Targets: metric, window label, group, target."
    )
    quotas: list[QuotaEntry] = Field(
        default_factory=list, description="Rep quotas (as if they came as quota events)."
    )
    spend: list[SpendEntry] = Field(
        default_factory=list, description="Acquisition and retention spend (as spend events)."
    )
    nps_scale: Literal[10, 5] = Field(
        default=10,
        description="NPS answer scale: 10 (0-10: promoters 9-10, detractors 0-6) or 5 "
        "(1-5: promoters 4-5, detractors 1-2).",
    )
    clv_lifespan_years: float = Field(
        default=3.0, gt=0, description="Customer lifespan in years used by clv."
    )
    engagement_weights: dict[ActivityType, float] = Field(
        default_factory=lambda: dict(DEFAULT_ENGAGEMENT_WEIGHTS),
        description="Weight of each activity type in engagement_score; types not listed keep "
        "their default (call 3, meeting 5, email 1, task 0, note 0).",
    )

    @field_validator("enable", mode="before")
    @classmethod
    def _enable(cls, value: Any) -> Any:
        if value == "all" or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return value
        raise ValueError(f"expected 'all' or a list of metric names, got {value!r}")

    @field_validator("goals", mode="before")
    @classmethod
    def _goal_labels(cls, value: Any) -> Any:
        # YAML reads ``window: 2026`` as a number; a window label is text.
        if isinstance(value, list):
            return [
                {**g, "window": str(g["window"])}
                if isinstance(g, dict) and isinstance(g.get("window"), int)
                else g
                for g in value
            ]
        return value

    def derived_params(self) -> dict[str, float]:
        """Built-in parameters set by the options above."""
        promoter, detractor = (9, 6) if self.nps_scale == 10 else (4, 2)
        weights = {**DEFAULT_ENGAGEMENT_WEIGHTS, **self.engagement_weights}
        return {
            "lifespan_years": self.clv_lifespan_years,
            "nps_promoter_min": promoter,
            "nps_detractor_max": detractor,
            **{f"engagement_{kind}": weight for kind, weight in weights.items()},
        }

    def option_of_param(self, param: str) -> str | None:
        """The option above that sets ``param``, if the file sets that option."""
        options = {
            "lifespan_years": "clv_lifespan_years",
            "nps_promoter_min": "nps_scale",
            "nps_detractor_max": "nps_scale",
            **{f"engagement_{k}": "engagement_weights" for k in DEFAULT_ENGAGEMENT_WEIGHTS},
        }
        option = options.get(param)
        if option is None or option not in self.model_fields_set:
            return None
        if option == "engagement_weights" and param[len("engagement_") :] not in (
            self.engagement_weights
        ):
            return None
        return option


# ------------------------------------------------------------------ write-back


class RecordMatch(ConfigModel):
    """Write a per-group value to every record of the target object whose ``field`` equals the
    group's value (for example the rep's open deals: ``{field: hubspot_owner_id,
    where: {dealstage: open}}``)."""

    field: str = Field(min_length=1, description="The target object's field holding the group id.")
    where: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Extra equality filters on the target records."
    )


class WritebackTarget(ConfigModel):
    """Where values are written: a connector's object, record(s) and custom field."""

    connector: str = Field(min_length=1, description="Name of a configured connector.")
    object: str = Field(
        min_length=1, description="CRM object: companies, deals, Account, User, organization, ..."
    )
    field: str = Field(min_length=1, description="API name of the custom field to write.")
    record: Id | None = Field(
        default=None,
        description="Record id to write a company-wide value to (required when group is {}).",
    )
    match: RecordMatch | None = Field(
        default=None,
        description="For per-group values: which records to write. Default: the record whose "
        "id is the group's value (the account, the user). Not supported by the runtimes yet: "
        "use records.",
    )
    records: dict[Id, Id] | None = Field(
        default=None,
        description="For per-group values: group value -> record id, for objects that cannot "
        "hold the value themselves (HubSpot owners, Pipedrive users): e.g. each rep's own "
        "custom-object record. Groups not listed are not written.",
    )
    label: str | None = Field(
        default=None, description="Field label when provisioning; default from the metric name."
    )


class WritebackRule(ConfigModel):
    """Write a metric's value for one window and group into a CRM field whenever it changes."""

    metric: str = Field(min_length=1, description="Metric name (built-in or yours).")
    window: str = Field(
        default="month",
        description="month, quarter, year, rolling:<N>d, or current (snapshot metrics).",
    )
    which: Literal["current", "previous"] = Field(
        default="current",
        description="current: the window holding now (values change as it fills); previous: the "
        "last complete one (calendar windows only).",
    )
    group: tuple[str, ...] = Field(
        default=(),
        description="{} for one company-wide value, or a group field like owner_id or "
        "account_id: one value per group, each written to its own record.",
    )
    target: WritebackTarget = Field(description="Where to write.")

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if value.strip() != "current":
            parse_window_spec(value)
        return value.strip()

    @field_validator("group", mode="before")
    @classmethod
    def _group(cls, value: Any) -> Any:
        return group_of(value)

    @model_validator(mode="after")
    def _shape(self) -> WritebackRule:
        if self.which == "previous" and not self.window_spec.is_calendar:
            raise ValueError("which: previous needs a calendar window (month, quarter or year)")
        if len(self.group) > 1:
            raise ValueError(
                "a write-back rule writes one value per record: use group {} or one group field"
            )
        if not self.group:
            if self.target.record is None:
                raise ValueError(
                    "a company-wide value (group {}) goes to one record: set target.record"
                )
            if self.target.match is not None:
                raise ValueError("target.match is for per-group values; group is {}")
        elif self.target.record is not None:
            raise ValueError(
                f"values per {self.group[0]} go to one record each: remove target.record "
                "(or use target.records to map each group to its record)"
            )
        if self.target.records is not None and not self.group:
            raise ValueError("target.records maps group values to records; group is {}")
        if self.target.records is not None and self.target.match is not None:
            raise ValueError("use target.records or target.match, not both")
        return self

    @property
    def window_spec(self) -> WindowSpec:
        return CURRENT if self.window == "current" else parse_window_spec(self.window)


# ------------------------------------------------------------------ runtime


def _listen(value: Any) -> Any:
    text = value if isinstance(value, str) else ""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port like 127.0.0.1:8080, got {value!r}")
    return text


def _broker(value: str) -> str:
    for url in value.split(";"):
        parts = urlsplit(url.strip())
        if parts.scheme not in ("kafka", "aiokafka", "confluent") or not parts.hostname:
            raise ValueError(f"expected a broker URL like kafka://127.0.0.1:9092, got {url!r}")
    return value


class RetrySettings(ConfigModel):
    """How failed writes are retried: exponential backoff with jitter, then dead letters."""

    initial: Annotated[Duration, Field(gt=0)] = Field(default=1.0, description="First delay.")
    max: Annotated[Duration, Field(gt=0)] = Field(default=300.0, description="Longest delay.")
    attempts: int = Field(
        default=10, ge=1, description="Attempts before a write goes to the dead letters."
    )


def _at_least_once(value: str) -> str:
    if value == "exactly_once":
        raise ValueError(
            "exactly_once is not supported: faust-streaming 0.15.3 failed with it here "
            "(IllegalOperation errors), and transaction markers would leave gaps in the offsets "
            "the runtime checks; keep at_least_once, with which every stage is idempotent and "
            "each event counts exactly once (docs/faust.md)"
        )
    return value


class FaustSettings(ConfigModel):
    """The Faust runtime (``runtime.kind: faust``)."""

    app_id: str = Field(
        default="crm-pulse", min_length=1, description="Faust app id: consumer group, topics."
    )
    broker: Annotated[str, AfterValidator(_broker)] = Field(
        default="kafka://127.0.0.1:9092",
        description="Kafka broker URL(s), ';'-separated: kafka://, aiokafka:// or confluent://.",
    )
    partitions: int = Field(default=8, ge=1, description="Partitions of the topics created.")
    store: Literal["memory", "rocksdb"] = Field(
        default="memory",
        description="Table store: memory (rebuilt from the changelog at start) or rocksdb.",
    )
    standby_replicas: int = Field(default=1, ge=0, description="Standby copies of each table.")
    data_dir: FilePath = Field(
        default=Path("crm-pulse-data"),
        validate_default=True,
        description="Where workers keep their tables on disk (store: rocksdb); relative to the "
        "deployment file's directory. Each worker process takes a directory of its own under "
        "<data_dir>/<app_id> (worker-0, worker-1, ..., locked while it runs), so several "
        "workers can start from one directory and a restarted one finds its tables again.",
    )
    processing_guarantee: Annotated[
        Literal["at_least_once", "exactly_once"], AfterValidator(_at_least_once)
    ] = Field(
        default="at_least_once",
        description="at_least_once: the runtime makes every stage idempotent, which gives an "
        "exactly-once effect (docs/faust.md). exactly_once (Kafka transactions) is refused.",
    )


class RuntimeSection(ConfigModel):
    """How crm-pulse runs."""

    kind: Literal["embedded", "faust"] = Field(
        default="embedded",
        description="embedded: one process, state in SQLite; faust: Kafka workers.",
    )
    state_path: FilePath = Field(
        default=Path("crm-pulse.sqlite"),
        validate_default=True,
        description="SQLite file of the embedded runtime (log, state, outbox); relative to the "
        "deployment file's directory.",
    )
    listen: Annotated[str, BeforeValidator(_listen)] = Field(
        default="127.0.0.1:8080", description="host:port of the HTTP server (webhooks, status)."
    )
    batch_size: int = Field(
        default=500, ge=1, le=100_000, description="Events the engine takes per transaction."
    )
    debounce: Duration = Field(
        default=2.0,
        description="Write-back waits this long after a change so a burst becomes one write.",
    )
    tick: Annotated[Duration, Field(gt=0)] = Field(
        default=60.0,
        description="How often time alone is checked: calendar rollover and rolling windows.",
    )
    retry: RetrySettings = Field(
        default_factory=RetrySettings, description="Retries of failed writes."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Lowest level logged."
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one object per line; text: for people."
    )
    faust: FaustSettings = Field(
        default_factory=FaustSettings, description="Faust settings (kind: faust)."
    )

    @property
    def host(self) -> str:
        host = self.listen.rpartition(":")[0]
        return host[1:-1] if host.startswith("[") else host

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


# ------------------------------------------------------------------ the deployment


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name like 'Europe/Berlin')"
        ) from None
    return value


def _group_text(group: Sequence[str]) -> str:
    if not group:
        return "{}"
    return group[0] if len(group) == 1 else f"[{', '.join(group)}]"


class Deployment(ConfigModel):
    """A whole deployment file. Load it with :func:`crm_pulse.config.load_config`."""

    version: Literal[1] = Field(default=1, description="Version of this file's format.")
    timezone: Annotated[str, AfterValidator(_timezone)] = Field(
        default="UTC", description="IANA time zone in which calendar windows are cut."
    )
    connectors: list[ConnectorEntry] = Field(
        default_factory=list,
        description="Connectors, each keyed by its kind: hubspot, salesforce, pipedrive, events "
        "or a plugin's kind.",
    )
    metrics: MetricsSection = Field(
        default_factory=MetricsSection, description="Metrics, definitions, quotas, spend, goals."
    )
    writeback: list[WritebackRule] = Field(
        default_factory=list, description="Which values are written where."
    )
    runtime: RuntimeSection = Field(default_factory=RuntimeSection, description="How to run.")

    _source_file: str = PrivateAttr(default="")

    @property
    def source_file(self) -> str:
        """The file this deployment was read from ('' when built in code)."""
        return self._source_file

    # ---------------------------------------------------------------- derived views

    def connector(self, name: str) -> ConnectorEntry:
        """The connector named ``name`` (KeyError if none)."""
        for entry in self.connectors:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def definitions(self) -> Definitions:
        """Built-in definitions (metrics filtered by enable/disable) merged with the user's."""
        builtin = builtin_definitions()
        m = self.metrics
        disabled = set(m.disable)
        metrics = {
            name: mdef
            for name, mdef in builtin.metrics.items()
            if (m.enable == "all" or name in m.enable) and name not in disabled
        }
        metrics.update((n, d) for n, d in m.metrics.items() if n not in disabled)
        return Definitions(
            params={**builtin.params, **m.derived_params(), **m.params},
            measures={**builtin.measures, **m.measures},
            metrics=metrics,
            goals=tuple(m.goals),
        )

    def catalog(self) -> Catalog:
        """The compiled catalog of this deployment (time zone, parameters, definitions)."""
        return build_catalog(self.definitions(), timezone=self.timezone, file=self.source_file)

    def config_events(self, version: int = 1) -> list[Event]:
        """Quotas and spend of the file as canonical events (source ``config``).

        Ids are deterministic (``<owner>:<period>:<start>`` for quotas,
        ``<category>:<period>:<start>`` for spend), so applying the file twice changes nothing.
        A runtime that re-applies an edited file passes a ``version`` greater than the last one
        it applied, so that changed amounts replace the old ones.
        """
        events: list[Event] = []
        for q in self.metrics.quotas:
            events.append(
                Event(
                    source=CONFIG_SOURCE,
                    object="quota",
                    id=q.record_id,
                    op="upsert",
                    version=version,
                    fields={
                        "owner_id": q.owner_id,
                        "period": q.period,
                        "period_start": q.period_start.isoformat(),
                        "amount": format(q.amount, "f"),
                    },
                )
            )
        for s in self.metrics.spend:
            events.append(
                Event(
                    source=CONFIG_SOURCE,
                    object="spend",
                    id=s.record_id,
                    op="upsert",
                    version=version,
                    fields={
                        "category": s.category,
                        "period": s.period,
                        "period_start": s.period_start.isoformat(),
                        "amount": format(s.amount, "f"),
                    },
                )
            )
        return events

    def window_specs(self) -> tuple[WindowSpec, ...]:
        """Windows the runtime maintains: month and quarter, and any a rule or goal needs."""
        specs = list(DEFAULT_WINDOWS)
        extra = [r.window_spec for r in self.writeback if r.window != "current"]
        extra += [WindowSpec(_goal_kind(g.window)) for g in self.metrics.goals]
        for spec in extra:
            if spec not in specs:
                specs.append(spec)
        return tuple(specs)

    # ---------------------------------------------------------------- checks across sections

    def check_references(self) -> list[ConfigProblem]:
        """Problems that need more than one section; empty when the deployment is consistent.

        Connector names, metric names in enable/disable, user definitions (compiled with the
        built-ins), quota and spend duplicates, goals and every write-back rule's connector,
        metric, window and group. ``load_config`` runs this; code building a Deployment by hand
        should too.
        """
        problems: list[ConfigProblem] = []

        def add(path: KeyPath, message: str) -> None:
            problems.append(ConfigProblem(format_path(path), message, self.source_file))

        self._check_connectors(add)
        self._check_metric_names(add)
        self._check_data(add)
        try:
            defs = self.definitions()
        except ValidationError as exc:
            problems += problems_from_validation(exc, "metrics", self.source_file)
            return problems
        catalog: Catalog | None
        try:
            catalog = build_catalog(defs, timezone=self.timezone, file=self.source_file)
        except ConfigError as exc:
            catalog = None
            for p in exc.problems:
                path = parse_path(p.path)
                if path and path[0] != "timezone":
                    path = ("metrics", *path)
                add(path, self._explain(path, p.message))
            try:  # still check the write-back rules of the built-in metrics
                catalog = build_catalog(
                    defs.model_copy(
                        update={
                            "metrics": {
                                n: d
                                for n, d in defs.metrics.items()
                                if n not in self.metrics.metrics
                            },
                            "measures": builtin_definitions().measures,
                            "goals": (),
                        }
                    ),
                    timezone=self.timezone,
                )
            except ConfigError:
                catalog = None
        self._check_goals(add, defs)
        self._check_writeback(add, defs, catalog)
        return problems

    def _check_connectors(self, add: Any) -> None:
        seen: dict[str, int] = {}
        for i, entry in enumerate(self.connectors):
            name = entry.name
            path: KeyPath = ("connectors", i, entry.kind, "name")
            if name == CONFIG_SOURCE:
                add(path, f"the name {CONFIG_SOURCE!r} is reserved for events made from this file")
            elif name in seen:
                add(
                    path,
                    f"connector name {name!r} is already used by connectors[{seen[name]}]; "
                    "give each connector its own name",
                )
            else:
                seen[name] = i

    def _check_metric_names(self, add: Any) -> None:
        m = self.metrics
        builtin = builtin_definitions().metrics
        if m.enable != "all":
            for j, name in enumerate(m.enable):
                if name not in builtin and name not in m.metrics:
                    hint = _did_you_mean(name, [*builtin, *m.metrics])
                    add(("metrics", "enable", j), f"unknown metric {name!r}{hint}")
        for j, name in enumerate(m.disable):
            if name not in builtin and name not in m.metrics:
                hint = _did_you_mean(name, [*builtin, *m.metrics])
                add(("metrics", "disable", j), f"unknown metric {name!r}{hint}")
        for param in m.params:
            option = m.option_of_param(param)
            if option is not None:
                add(
                    ("metrics", "params", param),
                    f"also set by metrics.{option}; set it in one place",
                )

    def _check_data(self, add: Any) -> None:
        lists: list[tuple[str, Sequence[QuotaEntry | SpendEntry]]] = [
            ("quotas", self.metrics.quotas),
            ("spend", self.metrics.spend),
        ]
        for key, entries in lists:
            seen: dict[str, int] = {}
            for i, entry in enumerate(entries):
                rid = entry.record_id
                if rid in seen:
                    add(
                        ("metrics", key, i),
                        f"the same {entry.period} as metrics.{key}[{seen[rid]}] "
                        f"({rid}); give each period once",
                    )
                else:
                    seen[rid] = i

    def _explain(self, path: KeyPath, message: str) -> str:
        if len(path) == 4 and path[:2] == ("metrics", "goals") and path[3] == "metric":
            name = self.metrics.goals[int(path[2])].metric
            if name in builtin_definitions().metrics or name in self.metrics.metrics:
                return f"metric {name!r} is disabled (metrics.enable / metrics.disable)"
        return message

    def _check_goals(self, add: Any, defs: Definitions) -> None:
        for i, goal in enumerate(self.metrics.goals):
            mdef = defs.metrics.get(goal.metric)
            if mdef is None:
                continue  # reported by build_catalog
            group = group_of(goal.group)
            if group not in mdef.groups:
                add(
                    ("metrics", "goals", i, "group"),
                    f"{goal.metric} is computed for groups "
                    f"{', '.join(_group_text(g) for g in mdef.groups)}; not {_group_text(group)}",
                )

    def _check_writeback(self, add: Any, defs: Definitions, catalog: Catalog | None) -> None:
        entries = {e.name: e for e in self.connectors}
        builtin = builtin_definitions().metrics
        targets: dict[tuple[Any, ...], int] = {}
        for i, rule in enumerate(self.writeback):
            here: KeyPath = ("writeback", i)
            t = rule.target
            entry = entries.get(t.connector)
            if entry is None:
                hint = _did_you_mean(t.connector, list(entries))
                known = ", ".join(entries) or "none"
                add(
                    (*here, "target", "connector"),
                    f"no connector named {t.connector!r}{hint} (connectors: {known})",
                )
            elif not entry.can_write:
                add(
                    (*here, "target", "connector"),
                    f"{t.connector!r} is an {entry.kind} ingress: it receives, nothing is "
                    "written to it",
                )
            key = (t.connector, t.object, t.field, t.record, repr(t.match))
            if key in targets:
                add(
                    (*here, "target"),
                    f"writes the same field as writeback[{targets[key]}]; each field holds "
                    "one value",
                )
            else:
                targets[key] = i
            mdef = defs.metrics.get(rule.metric)
            if mdef is None:
                if rule.metric in builtin or rule.metric in self.metrics.metrics:
                    message = (
                        f"metric {rule.metric!r} is disabled (metrics.enable / metrics.disable)"
                    )
                else:
                    hint = _did_you_mean(rule.metric, list(defs.metrics))
                    message = f"unknown metric {rule.metric!r}{hint}"
                add((*here, "metric"), message)
                continue
            if rule.group not in mdef.groups:
                offered = ", ".join(_group_text(g) for g in mdef.groups)
                wanted = _group_text(rule.group)
                add(
                    (*here, "group"),
                    f"{rule.metric} is computed for groups {offered}; not {wanted}",
                )
            compiled = catalog.metrics.get(rule.metric) if catalog is not None else None
            if compiled is None:
                continue
            spec = rule.window_spec
            if compiled.is_current and spec.kind != "current":
                add(
                    (*here, "window"),
                    f"{rule.metric} is a snapshot of the present: use window: current",
                )
            elif not compiled.is_current and spec.kind == "current":
                add(
                    (*here, "window"),
                    f"{rule.metric} is computed per window: use month, quarter, year or "
                    "rolling:<N>d",
                )
            elif not compiled.is_current and not compiled.supports(spec):
                add(
                    (*here, "window"),
                    f"{rule.metric} is computed for calendar windows only (month, quarter, year), "
                    f"not {spec}",
                )

    def summary(self) -> list[str]:
        """A few lines saying what this deployment does (no secrets): for ``crm-pulse check``."""
        lines: list[str] = []
        if self.connectors:
            described = []
            for entry in self.connectors:
                settings = entry.settings
                extra = ""
                if isinstance(settings, VendorSettings):
                    extra = f", poll every {format_duration(settings.poll_interval)}"
                described.append(f"{entry.name} ({entry.kind}{extra})")
            lines.append(f"connectors: {', '.join(described)}")
        else:
            lines.append("connectors: none")
        defs = self.definitions()
        builtin = builtin_definitions().metrics
        user = [n for n in defs.metrics if n in self.metrics.metrics]
        built = [n for n in defs.metrics if n not in self.metrics.metrics and n in builtin]
        m = self.metrics
        lines.append(
            f"metrics: {len(defs.metrics)} enabled ({len(built)} built-in, {len(user)} yours"
            + (f": {', '.join(user)}" if user else "")
            + f"); {len(m.goals)} goals, {len(m.quotas)} quotas, {len(m.spend)} spend entries; "
            f"time zone {self.timezone}"
        )
        if self.writeback:
            per: dict[str, int] = {}
            for rule in self.writeback:
                per[rule.target.connector] = per.get(rule.target.connector, 0) + 1
            counts = ", ".join(f"{name} {n}" for name, n in per.items())
            lines.append(f"write-back: {len(self.writeback)} rules ({counts})")
        else:
            lines.append("write-back: no rules")
        r = self.runtime
        where = f"state {r.state_path}" if r.kind == "embedded" else f"broker {r.faust.broker}"
        lines.append(f"runtime: {r.kind}, {where}, listening on {r.listen}")
        return lines


def _goal_kind(label: str) -> str:
    if "Q" in label:
        return "quarter"
    return "month" if "-" in label else "year"
