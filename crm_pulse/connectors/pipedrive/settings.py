"""Settings of a Pipedrive connector (``- pipedrive: {...}`` in the deployment file)."""

from __future__ import annotations

from typing import ClassVar, Literal, get_args

from pydantic import Field, model_validator

from ...config.base import ConfigModel, HttpUrl
from ...config.connectors import VendorSettings
from ...config.durations import Duration
from ...config.mappings import (
    ActivityTypeMapping,
    DealTypeMapping,
    FieldOverrides,
    LifecycleMapping,
)
from ...config.secrets import Secret

__all__ = ["PipedriveMapping", "PipedriveObject", "PipedriveSettings"]


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
    currency: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{3}$",
        description="Currency code written with money values into monetary custom fields "
        "(API v2 takes {value, currency}). Default: the company's default currency "
        "(GET /v1/users/me).",
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
    users: bool = Field(
        default=True,
        description="Read the company's users (GET /v1/users) as canonical users, for CRM "
        "adoption metrics (OAuth apps need the users:read scope; without it users are skipped "
        "with a warning).",
    )
    mapping: PipedriveMapping = Field(
        default_factory=PipedriveMapping, description="How records map to canonical ones."
    )

    def webhook_hint(self) -> str | None:
        if self.webhook_password is None:
            return "set webhook_user and webhook_password: ${PIPEDRIVE_WEBHOOK_PASSWORD}"
        return None

    def target_problems(self, object: str, field: str) -> list[str]:
        kind = object.lower()
        if kind in ("user", "users"):
            return [
                "Pipedrive users take no custom fields: write per-rep values to a record "
                "mapped with target.records (each rep's scorecard organization, say)"
            ]
        if kind not in ("deal", "deals", "person", "persons", "organization", "organizations"):
            return [f"Pipedrive custom fields live on deal, person or organization, not {object!r}"]
        return []

    @model_validator(mode="after")
    def _webhook_pair(self) -> PipedriveSettings:
        if (self.webhook_user is None) != (self.webhook_password is None):
            raise ValueError(
                "webhooks need both webhook_user and webhook_password (or neither: polling only)"
            )
        return self
