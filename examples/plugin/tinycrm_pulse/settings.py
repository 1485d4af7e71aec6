"""The ``- tinycrm: {...}`` section of a crm-pulse deployment file."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from crm_pulse.connectors import HttpUrl, Secret, VendorSettings


class TinyCrmSettings(VendorSettings):
    """A TinyCRM account. ``poll_interval``, ``timeout``, ``backfill_since`` and ``ca_cert``
    come from VendorSettings; ``name`` (default ``tinycrm``) from ConnectorSettings."""

    KIND: ClassVar[str] = "tinycrm"

    base_url: HttpUrl = Field(
        description="The account's API address, like https://acme.tinycrm.example"
    )
    api_key: Secret = Field(description="API key (``${ENV}`` only), sent as a bearer token.")
    webhook_secret: Secret | None = Field(
        default=None, description="Signs webhooks; without it webhooks are refused."
    )
