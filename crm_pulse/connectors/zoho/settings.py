"""Settings of a Zoho CRM connector (``- zoho: {...}`` in the deployment file)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, get_args

from pydantic import Field, model_validator

from ...config.base import ConfigModel, DealStatus, HttpUrl, TicketStatus
from ...config.connectors import VendorSettings
from ...config.durations import Duration
from ...config.mappings import (
    ActivityTypeMapping,
    DealTypeMapping,
    FieldOverrides,
    LifecycleMapping,
)
from ...config.secrets import Secret

__all__ = ["DATA_CENTRES", "DataCentre", "ZohoMapping", "ZohoModule", "ZohoSettings"]

DataCentre = Literal["com", "eu", "in", "com.au", "com.cn", "jp", "ca", "sa"]

DATA_CENTRES: dict[str, tuple[str, str]] = {
    "com": ("https://accounts.zoho.com", "https://www.zohoapis.com"),
    "eu": ("https://accounts.zoho.eu", "https://www.zohoapis.eu"),
    "in": ("https://accounts.zoho.in", "https://www.zohoapis.in"),
    "com.au": ("https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
    "com.cn": ("https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
    "jp": ("https://accounts.zoho.jp", "https://www.zohoapis.jp"),
    "ca": ("https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
    "sa": ("https://accounts.zoho.sa", "https://www.zohoapis.sa"),
}
"""Data centre -> (accounts server, API domain), as Zoho's Multi DC pages list them."""

ZohoModule = Literal["Accounts", "Contacts", "Leads", "Deals", "Cases", "Calls", "Events", "Tasks"]
"""Module API names read (``Events`` is the Meetings module's API name)."""

WEEK = 7 * 24 * 3600.0


class ZohoMapping(ConfigModel):
    """How Zoho CRM records become canonical records. Fields are given by API name."""

    deal_stages: dict[str, DealStatus] = Field(
        default_factory=dict,
        description="Deal Stage value -> open/won/lost, overriding what the Stage picklist's "
        "forecast type, forecast category and probability say.",
    )
    deal_type: DealTypeMapping = Field(
        default_factory=lambda: DealTypeMapping(
            property="Type",
            values={"New Business": "new", "Existing Business": "upsell"},
        ),
        description="Deal field and values giving the canonical deal type.",
    )
    ticket_closed: list[str] = Field(
        default_factory=lambda: ["Closed"],
        description="Case Status values that mean the case is closed.",
    )
    ticket_status_override: dict[str, TicketStatus] = Field(
        default_factory=dict,
        description="Case Status value -> open/closed, for statuses not covered above.",
    )
    customer_since_field: str | None = Field(
        default=None,
        description="Account field (API name) holding the date it became a customer.",
    )
    churned_at_field: str | None = Field(
        default=None, description="Account field (API name) holding the churn date."
    )
    lifecycle: LifecycleMapping | None = Field(
        default=None,
        description="Contact field and values giving the lifecycle; Leads are always 'lead'.",
    )
    task_type: ActivityTypeMapping | None = Field(
        default=None,
        description="Task field and values giving the activity type (default: every task is "
        "a task; calls are calls, meetings meetings).",
    )
    fields: FieldOverrides = Field(
        default_factory=FieldOverrides,
        description="Canonical fields read from other fields (API names) than the defaults.",
    )


class ZohoSettings(VendorSettings):
    """A Zoho CRM organization through REST API v8 and a self client (``- zoho: {...}``)."""

    KIND: ClassVar[str] = "zoho"

    client_id: Secret = Field(description="OAuth client id of the self client (``${ENV}``).")
    client_secret: Secret = Field(description="OAuth client secret (``${ENV}``).")
    refresh_token: Secret = Field(
        description="Refresh token generated for the self client (``${ENV}``)."
    )
    data_centre: DataCentre = Field(
        default="com",
        description="Where the org lives: com, eu, in, com.au, com.cn, jp, ca or sa; it picks "
        "the accounts server and the API domain.",
    )
    api_url: HttpUrl | None = Field(
        default=None,
        description="API domain instead of the data centre's (a sandbox, a local simulator).",
    )
    accounts_url: HttpUrl | None = Field(
        default=None,
        description="Accounts server instead of the data centre's (a local simulator).",
    )
    notify_url: HttpUrl | None = Field(
        default=None,
        description="Public URL of this connector's webhook (https://<host>/webhooks/zoho). "
        "With it (and channel_token) the connector keeps a Notification API channel open; "
        "without it changes arrive by polling only.",
    )
    channel_token: Secret | None = Field(
        default=None,
        description="Token Zoho sends back in every notification (at most 50 characters); "
        "notifications without it are refused.",
    )
    channel_id: Annotated[int, Field(gt=0, lt=2**63)] = Field(
        default=1_000_000_068_001, description="Notification channel id (a positive long)."
    )
    channel_lifetime: Annotated[Duration, Field(ge=600, le=WEEK)] = Field(
        default=24 * 3600.0,
        description="How long each channel subscription lasts (Zoho allows up to a week); it "
        "is renewed when less than a quarter of it is left.",
    )
    overlap: Duration = Field(
        default=60.0, description="Each poll re-reads this much before the Modified_Time cursor."
    )
    daily_credits: Annotated[int, Field(gt=0)] = Field(
        default=5000,
        description="The org's API credits per 24 hours (Setup > Developer Hub > APIs > "
        "Dashboard); default 5,000, the Free edition's, so an unset value errs low.",
    )
    credit_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of the daily credits this connector may spend in any 24 hours.",
    )
    concurrency: Annotated[int, Field(ge=1, le=25)] = Field(
        default=5, description="Simultaneous API calls at most (Zoho limits them per edition)."
    )
    objects: list[ZohoModule] = Field(
        default_factory=lambda: list(get_args(ZohoModule)),
        description="Modules to read (Accounts, Contacts, Leads, Deals, Cases, Calls, Events, "
        "Tasks). Default: all.",
    )
    mapping: ZohoMapping = Field(
        default_factory=ZohoMapping, description="How records map to canonical ones."
    )

    @model_validator(mode="after")
    def _channel(self) -> ZohoSettings:
        if (self.notify_url is None) != (self.channel_token is None):
            raise ValueError(
                "notifications need both notify_url and channel_token (or neither: polling only)"
            )
        if self.channel_token is not None and len(self.channel_token.get_secret_value()) > 50:
            raise ValueError("channel_token: Zoho accepts at most 50 characters")
        if self.notify_url is not None and self.channel_lifetime / 4 <= self.poll_interval:
            raise ValueError(
                "channel_lifetime must exceed 4 x poll_interval: the channel is renewed by a "
                "poll when a quarter of its lifetime is left, and would lapse between polls"
            )
        return self

    def hosts(self) -> tuple[str, str]:
        """(accounts server, API domain) without a trailing slash."""
        accounts, api = DATA_CENTRES[self.data_centre]
        return (
            str(self.accounts_url or accounts).rstrip("/"),
            str(self.api_url or api).rstrip("/"),
        )
