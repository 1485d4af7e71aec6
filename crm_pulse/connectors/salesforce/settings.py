"""Settings of a Salesforce connector (``- salesforce: {...}`` in the deployment file)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

from pydantic import Field, field_validator, model_validator

from ...config.base import ConfigModel, HttpUrl
from ...config.connectors import VendorSettings
from ...config.durations import Duration
from ...config.mappings import (
    ActivityTypeMapping,
    DealTypeMapping,
    FieldOverrides,
    SurveyTypeMapping,
)
from ...config.secrets import Secret

__all__ = ["OutboundMessages", "SalesforceMapping", "SalesforceObject", "SalesforceSettings"]


SalesforceObject = Literal[
    "Account", "Contact", "Lead", "Opportunity", "Case", "Task", "Event", "User"
]


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
        "Case, Task, Event and User (CRM adoption).",
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
