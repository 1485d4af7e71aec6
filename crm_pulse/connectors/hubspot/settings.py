"""Settings of a HubSpot connector (``- hubspot: {...}`` in the deployment file)."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal, get_args

from pydantic import Field

from ...config.base import ConfigModel, DealStatus, HttpUrl, TicketStatus
from ...config.connectors import VendorSettings
from ...config.durations import Duration
from ...config.mappings import (
    DealTypeMapping,
    FieldOverrides,
    LifecycleMapping,
    SurveyTypeMapping,
)
from ...config.secrets import Secret

__all__ = ["HubSpotMapping", "HubSpotObject", "HubSpotSettings"]


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
        description="Ticket stage id -> open/closed, overriding the stage's ticketState.",
    )
    lifecycle: LifecycleMapping = Field(
        default_factory=lambda: LifecycleMapping(
            property="lifecyclestage",
            values={
                "lead": "lead",
                "marketingqualifiedlead": "qualified",
                "salesqualifiedlead": "qualified",
                "opportunity": "qualified",
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
    owners: bool = Field(
        default=True,
        description="Read owners (GET /crm/v3/owners, active and archived) as canonical users, "
        "for CRM adoption metrics (needs the crm.objects.owners.read scope; without it owners "
        "are skipped with a warning).",
    )
    property_group: str = Field(
        default="crm_pulse", min_length=1, description="Property group of the created fields."
    )
    mapping: HubSpotMapping = Field(
        default_factory=HubSpotMapping, description="How records map to canonical ones."
    )

    def webhook_hint(self) -> str | None:
        if self.app_secret is None:
            return "set app_secret: ${HUBSPOT_APP_SECRET} (the app's client secret)"
        return None

    def target_problems(self, object: str, field: str) -> list[str]:
        if object.lower() in ("owners", "owner", "users", "user"):
            return [
                f"HubSpot {object} take no custom properties: write per-rep values to a custom "
                "object with one record per rep (target.records), or to deal or company "
                "properties"
            ]
        if not re.fullmatch(r"[a-z][a-z0-9_]*", field):
            return [f"HubSpot property names are lower case letters, digits and _, got {field!r}"]
        return []
