"""Settings of a monday CRM connector (``- monday: {...}`` in the deployment file).

Boards are named by id; their columns by **title** (as users see them), with defaults for the
titles of monday CRM's templates. The connector finds each title's column id per board.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from .. import (
    ActivityTypeMapping,
    ConfigModel,
    DealTypeMapping,
    Duration,
    HttpUrl,
    LifecycleMapping,
    Secret,
    VendorSettings,
)

__all__ = [
    "BOARD_KINDS",
    "DEFAULT_COLUMNS",
    "BoardKind",
    "MondayBoard",
    "MondayBoards",
    "MondaySettings",
    "MondayStages",
]

BoardKind = Literal["deals", "accounts", "contacts", "activities"]
BOARD_KINDS: tuple[BoardKind, ...] = ("deals", "accounts", "contacts", "activities")

DEFAULT_COLUMNS: dict[str, dict[str, list[str]]] = {
    # canonical field -> column titles tried in order (case-insensitive); the first present wins
    "deals": {
        "stage": ["Deal stage", "Stage", "Status"],
        "amount": ["Deal value", "Deal Value", "Value", "Amount"],
        "owner_id": ["Owner", "Deal owner", "Person"],
        "account_id": ["Accounts", "Account", "Company"],
        "closed_at": ["Close date", "Actual close date"],
        "expected_close": ["Expected close date", "Expected Close Date"],
    },
    "accounts": {
        "owner_id": ["Owner", "Account owner", "Person"],
        "domain": ["Domain", "Website", "Company domain"],
        "customer_since": ["Customer since"],
        "churned_at": ["Churn date", "Churned at"],
    },
    "contacts": {
        "owner_id": ["Owner", "Contact owner", "Person"],
        "account_id": ["Accounts", "Account", "Company"],
        "email": ["Email", "E-mail"],
    },
    "activities": {
        "owner_id": ["Owner", "Person"],
        "account_id": ["Accounts", "Account"],
        "occurred_at": ["Date", "Activity date", "Timeline"],
    },
}
"""Column titles of monday CRM's Deals, Accounts, Contacts boards (and an activities board)
as shipped in its templates; the deployment file overrides any of them per board."""


class MondayBoard(ConfigModel):
    """One board: its id and, optionally, column titles that differ from the template's."""

    id: str = Field(description="The board id (digits; in the board's URL).")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Canonical field -> column title on this board, where the board's titles "
        "differ from monday CRM's template (stage, amount, owner_id, account_id, closed_at, ...).",
    )

    @field_validator("id", mode="before")
    @classmethod
    def _digits(cls, value: object) -> object:
        text = str(value).strip() if isinstance(value, int | str) else value
        if isinstance(text, str) and not re.fullmatch(r"[0-9]{1,20}", text):
            raise ValueError("a monday board id is digits only (see the board's URL)")
        return text


class MondayBoards(ConfigModel):
    """Which board holds each kind of record; a kind without a board is not read."""

    deals: MondayBoard | None = Field(default=None, description="The Deals board.")
    accounts: MondayBoard | None = Field(default=None, description="The Accounts board.")
    contacts: MondayBoard | None = Field(default=None, description="The Contacts board.")
    activities: MondayBoard | None = Field(
        default=None, description="A board of activities (calls, meetings, emails), if kept."
    )

    def configured(self) -> list[tuple[BoardKind, MondayBoard]]:
        boards: dict[BoardKind, MondayBoard | None] = {
            "deals": self.deals,
            "accounts": self.accounts,
            "contacts": self.contacts,
            "activities": self.activities,
        }
        return [(kind, board) for kind, board in boards.items() if board is not None]


class MondayStages(ConfigModel):
    """Which labels of the Deals board's stage (status) column close a deal."""

    won: list[str] = Field(
        default_factory=lambda: ["Won", "Closed won"], description="Labels meaning won."
    )
    lost: list[str] = Field(
        default_factory=lambda: ["Lost", "Closed lost"], description="Labels meaning lost."
    )

    @model_validator(mode="after")
    def _disjoint(self) -> MondayStages:
        both = {s.casefold() for s in self.won} & {s.casefold() for s in self.lost}
        if both:
            raise ValueError(f"labels both won and lost: {', '.join(sorted(both))}")
        return self


class MondaySettings(VendorSettings):
    """A monday.com account (monday CRM) through the GraphQL API v2 (``- monday: {...}``)."""

    KIND: ClassVar[str] = "monday"

    api_token: Secret = Field(
        description="Personal or app API token (sent in the Authorization header)."
    )
    base_url: HttpUrl = Field(
        default="https://api.monday.com/v2", description="The GraphQL endpoint."
    )
    api_version: str = Field(
        default="2025-10",
        pattern=r"^[0-9]{4}-(01|04|07|10)$",
        description="API version pinned in the API-Version header (YYYY-MM, quarterly).",
    )
    boards: MondayBoards = Field(description="Board ids of deals, accounts, contacts, activities.")
    stages: MondayStages = Field(
        default_factory=MondayStages, description="Stage labels that mean won and lost."
    )
    activity_type: ActivityTypeMapping = Field(
        default_factory=lambda: ActivityTypeMapping(
            property="Activity type",
            values={"Call": "call", "Meeting": "meeting", "Email": "email", "Task": "task"},
        ),
        description="The activities board's type column (``property``: its title) and its "
        "labels -> canonical activity type.",
    )
    deal_type: DealTypeMapping | None = Field(
        default=None,
        description="The Deals board's column (``property``: its title) and labels giving the "
        "deal type (new, upsell, renewal); default: deals have no type.",
    )
    lifecycle: LifecycleMapping | None = Field(
        default=None,
        description="The Contacts board's column (``property``: its title) and labels giving "
        "the contact lifecycle; default: none.",
    )
    webhook_token: Secret | None = Field(
        default=None,
        description="Shared secret that board webhooks carry as ?token=... in their URL.",
    )
    signing_secret: Secret | None = Field(
        default=None,
        description="The integration app's Signing Secret: webhooks must carry a JWT signed "
        "with it in Authorization (integration webhooks).",
    )
    webhook_url: HttpUrl | None = Field(
        default=None,
        description="The public URL of this connector's webhook endpoint: the JWT's audience "
        "(and the URL MondayProvisioner.register_webhooks registers).",
    )
    overlap: Duration = Field(
        default=60.0, description="Each poll re-reads this much before the updated_at cursor."
    )
    reconcile_every: Duration = Field(
        default=900.0,
        ge=0,
        description="How often a poll lists every item id to find deleted and archived items "
        "that no webhook announced (0: every poll).",
    )
    page_size: int = Field(default=500, ge=1, le=500, description="Items per items_page call.")
    max_wait: Duration = Field(
        default=60.0,
        description="A read waits out a rate limit up to this long (monday's budgets reset "
        "within a minute); longer ones are raised to the poller, which retries later.",
    )

    @model_validator(mode="after")
    def _jwt_needs_audience(self) -> MondaySettings:
        if self.signing_secret is not None and self.webhook_url is None:
            raise ValueError(
                "signing_secret needs webhook_url (the JWT's audience is the endpoint's URL)"
            )
        if not self.boards.configured():
            raise ValueError("boards: name at least one board (deals, accounts, contacts)")
        return self
