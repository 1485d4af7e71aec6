"""The fakes of the five CRMs, served on 127.0.0.1, and the variables that point at them."""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from typing import Self

from ..hubspot import FakeHubSpot
from ..monday import FakeMonday
from ..pipedrive import FakePipedrive
from ..salesforce import FakeSalesforce
from ..server import FakeServer, TestCA
from ..zoho import FakeZoho
from .model import (
    HOME_COMPANY,
    HOME_ORGANIZATION,
    MONDAY_ACCOUNTS_BOARD,
    MONDAY_DEALS_BOARD,
    SandboxStats,
)


class _Company(ABC):
    """The fakes, their servers and what the seeding remembers; serving them."""

    def __init__(
        self, seed: int = 7, now_ms: int | None = None, live: set[str] | None = None
    ) -> None:
        self.rng = random.Random(seed)
        self.now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        self.ca = TestCA()
        self.hubspot = FakeHubSpot("demo-hubspot-token", app_secret="demo-hubspot-app-secret")
        self.pipedrive = FakePipedrive(
            "demo-pipedrive-token", webhook_password="demo-pipedrive-hook"
        )
        self.salesforce = FakeSalesforce(session_id="00Ddemo!salesforce-session")
        self.monday = FakeMonday(
            "demo-monday-token", signing_secret="demo-monday-signing-secret-0123456789abcdef"
        )
        self._mo_server = FakeServer(self.monday.app(), ca=self.ca)
        self.zoho = FakeZoho(
            client_id="1000.DEMOZOHOCLIENT",
            client_secret="demo-zoho-client-secret",
            refresh_token="1000.demo-zoho-refresh",
        )
        self._zo_server = FakeServer(self.zoho.app(), ca=self.ca)
        self.zoho_home = ""
        self.zoho_open: list[str] = []
        self.live = (
            live if live is not None else {"hubspot", "pipedrive", "salesforce", "monday", "zoho"}
        )
        self.mo_open: list[str] = []
        self.mo_home = ""
        self.monday_hook = ""
        self._hs_server = FakeServer(self.hubspot.app(), ca=self.ca)
        self._pd_server = FakeServer(self.pipedrive.app())
        self._sf_server = FakeServer(self.salesforce.app(), ca=self.ca)
        self.sf_home = ""
        self.stats = SandboxStats()
        self.companies: list[str] = []
        self.open_deals: list[str] = []
        self.pd_open: list[str] = []
        self.seed()

    @abstractmethod
    def seed(self) -> None:
        """Fill the fakes with the company's year (:mod:`.year`)."""

    # ------------------------------------------------------------ serving
    def start(self) -> Self:
        self._hs_server.start()
        self._pd_server.start()
        self._sf_server.start()
        self._mo_server.start()
        self._zo_server.start()
        return self

    def stop(self) -> None:
        self._hs_server.stop()
        self._pd_server.stop()
        self._sf_server.stop()
        self._mo_server.stop()
        self._zo_server.stop()

    def environment(self, state_path: str, port: int) -> dict[str, str]:
        return {
            "DEMO_HUBSPOT_URL": self._hs_server.url,
            "DEMO_HUBSPOT_TOKEN": self.hubspot.token,
            "DEMO_HUBSPOT_APP_SECRET": self.hubspot.app_secret,
            "DEMO_CA_CERT": str(self.ca.cert_path),
            "DEMO_PIPEDRIVE_URL": self._pd_server.url,
            "DEMO_PIPEDRIVE_TOKEN": self.pipedrive.token,
            "DEMO_PIPEDRIVE_WEBHOOK_PASSWORD": self.pipedrive.webhook_password,
            "DEMO_SALESFORCE_URL": self._sf_server.url,
            "DEMO_SALESFORCE_SESSION": self.salesforce.session_id,
            "DEMO_SALESFORCE_HOME": self.sf_home,
            "DEMO_MONDAY_URL": f"{self._mo_server.url}/v2",
            "DEMO_MONDAY_TOKEN": self.monday.token,
            "DEMO_MONDAY_SIGNING_SECRET": self.monday.signing_secret or "",
            "DEMO_MONDAY_HOOK_URL": self._monday_hook(port),
            "DEMO_MONDAY_HOME": self.mo_home,
            "DEMO_ZOHO_URL": self._zo_server.url,
            "DEMO_ZOHO_CLIENT_ID": self.zoho.client_id,
            "DEMO_ZOHO_CLIENT_SECRET": self.zoho.client_secret,
            "DEMO_ZOHO_REFRESH_TOKEN": self.zoho.refresh_token,
            "DEMO_ZOHO_CHANNEL_TOKEN": "demo-zoho-channel-token",
            "DEMO_ZOHO_NOTIFY_URL": f"http://127.0.0.1:{port}/webhooks/zoho",
            "DEMO_ZOHO_HOME": self.zoho_home,
            "DEMO_STATE": state_path,
            "DEMO_LISTEN": f"127.0.0.1:{port}",
        }

    def _monday_hook(self, port: int) -> str:
        self.monday_hook = f"http://127.0.0.1:{port}/webhooks/monday"
        return self.monday_hook

    def crm_environment(self) -> dict[str, str]:
        """The variables a file written by ``crm-pulse init --sandbox`` reads."""
        return {
            "HUBSPOT_URL": self._hs_server.url,
            "HUBSPOT_TOKEN": self.hubspot.token,
            "HUBSPOT_APP_SECRET": self.hubspot.app_secret,
            "HUBSPOT_HOME_RECORD": HOME_COMPANY,
            "PIPEDRIVE_URL": self._pd_server.url,
            "PIPEDRIVE_TOKEN": self.pipedrive.token,
            "PIPEDRIVE_WEBHOOK_PASSWORD": self.pipedrive.webhook_password,
            "PIPEDRIVE_HOME_RECORD": HOME_ORGANIZATION,
            "SALESFORCE_URL": self._sf_server.url,
            "SALESFORCE_SESSION": self.salesforce.session_id,
            "SALESFORCE_HOME_RECORD": self.sf_home,
            "MONDAY_URL": f"{self._mo_server.url}/v2",
            "MONDAY_TOKEN": self.monday.token,
            "MONDAY_DEALS_BOARD": MONDAY_DEALS_BOARD,
            "MONDAY_ACCOUNTS_BOARD": MONDAY_ACCOUNTS_BOARD,
            "MONDAY_HOME_RECORD": self.mo_home,
            "ZOHO_URL": self._zo_server.url,
            "ZOHO_CLIENT_ID": self.zoho.client_id,
            "ZOHO_CLIENT_SECRET": self.zoho.client_secret,
            "ZOHO_REFRESH_TOKEN": self.zoho.refresh_token,
            "ZOHO_HOME_RECORD": self.zoho_home,
            "CRM_PULSE_SANDBOX_CA": str(self.ca.cert_path),
        }
