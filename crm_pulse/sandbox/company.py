"""The seeded demo company: the simulators of HubSpot, Pipedrive, Salesforce, monday and Zoho CRM, filled with one company.

:class:`Sandbox` starts FakeHubSpot (HTTPS, with a throw-away CA) and FakePipedrive on
127.0.0.1, fills them with a year of one reproducible company (accounts, contacts, deals
through a pipeline with new business, upsells and renewals, tickets, calls, meetings and
e-mails, NPS and CSAT answers), and can then make live changes and deliver them as signed
webhooks (HubSpot v3 signatures, Pipedrive HTTP Basic, monday JWT, Zoho channel tokens) to a
runtime. ``live``
names the CRMs whose changes are made (``crm-pulse demo --crms``; default: all).

``environment()`` gives the variables ``demo.yaml`` (beside this module) reads (URLs, tokens,
secrets).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..metrics.events import Event
from .hubspot import FakeHubSpot, iso_ms
from .monday import FakeMonday
from .pipedrive import FakePipedrive
from .salesforce import FakeSalesforce
from .server import FakeServer, TestCA
from .zoho import FakeZoho

__all__ = ["HOME_COMPANY", "HOME_ORGANIZATION", "Sandbox", "SandboxStats"]

DAY = 86_400_000
HOME_COMPANY = "1001"  # the HubSpot company that holds company-wide values
HOME_ORGANIZATION = "101"  # the Pipedrive organization that holds company-wide values
MONDAY_DEALS_BOARD, MONDAY_ACCOUNTS_BOARD = "1000001", "1000002"  # the monday team's boards
HUBSPOT_REPS = ("11", "12", "13", "14")
PIPEDRIVE_REPS = (21, 22)
MONDAY_REPS = (31, 32)
_STAGES = ("appointmentscheduled", "qualifiedtobuy", "contractsent")


@dataclass
class SandboxStats:
    webhooks_sent: int = 0
    webhooks_refused: int = 0
    changes: int = 0


class Sandbox:
    """The three fakes, seeded; serve them with :meth:`start` and stop with :meth:`stop`."""

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

    # ------------------------------------------------------------ serving
    def start(self) -> Sandbox:
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

    # ------------------------------------------------------------ the company's year
    def _user(self, owner_id: str) -> int:
        """The HubSpot user id of a rep's owner (who makes that rep's changes)."""
        return int(self.hubspot.owners[owner_id]["userId"])

    def _ago(self, days: float) -> int:
        return self.now_ms - int(days * DAY)

    def seed(self) -> None:
        rng, hs = self.rng, self.hubspot
        for rep in HUBSPOT_REPS:  # the reps' users, and one who left
            hs.add_owner(f"rep{rep}@demo.test", "Rep", rep, owner_id=rep, created_ms=self._ago(500))
        hs.add_owner("former@demo.test", "Former", "Rep", owner_id="15", created_ms=self._ago(500))
        hs.deactivate_owner("15")
        self.companies.append(
            hs.create(
                "companies",
                {"name": "Demo Inc (company-wide values)", "domain": "demo.test"},
                modified_ms=self._ago(400),
            )
        )
        for i in range(40):
            became = self._ago(rng.uniform(20, 360)) if i < 32 else None
            props: dict[str, Any] = {
                "name": f"Customer {i}",
                "domain": f"customer{i}.test",
                "hubspot_owner_id": rng.choice(HUBSPOT_REPS),
                "createdate": iso_ms(self._ago(380)),
            }
            if became:
                props["hs_date_entered_customer"] = iso_ms(became)
            if became and i % 9 == 0:
                props["churn_date"] = iso_ms(
                    min(self.now_ms - DAY, became + int(rng.uniform(30, 200) * DAY))
                )
            self.companies.append(  # created and last changed by its owner
                hs.create(
                    "companies",
                    props,
                    modified_ms=self._ago(rng.uniform(1, 30)),
                    by_user=self._user(props["hubspot_owner_id"]),
                )
            )
        customers = self.companies[1:]
        for i in range(120):
            created = self._ago(rng.uniform(1, 360))
            lifecycle = "customer" if i % 3 == 0 else "lead"
            props = {
                "email": f"person{i % 110}@customer{i % 40}.test",
                "associatedcompanyid": rng.choice(customers),
                "hubspot_owner_id": rng.choice(HUBSPOT_REPS),
                "lifecyclestage": lifecycle,
                "createdate": iso_ms(created),
            }
            if lifecycle == "customer":
                props["hs_lifecyclestage_customer_date"] = iso_ms(
                    min(self.now_ms - DAY, created + int(rng.uniform(5, 60) * DAY))
                )
            hs.create(
                "contacts",
                props,
                modified_ms=self._ago(rng.uniform(0.5, 20)),
                by_user=self._user(props["hubspot_owner_id"]),
            )
        for _ in range(320):
            created = self._ago(rng.uniform(3, 365))
            kind = rng.choices(["newbusiness", "existingbusiness", "renewal"], [5, 2, 2])[0]
            outcome = rng.choices(["closedwon", "closedlost", "open"], [4, 3, 2])[0]
            stage = outcome if outcome != "open" else rng.choice(_STAGES)
            closed = min(self.now_ms - 3_600_000, created + int(rng.uniform(5, 60) * DAY))
            props = {
                "dealname": "Deal",
                "amount": str(rng.randrange(20, 400) * 100),
                "dealstage": stage,
                "pipeline": "default",
                "dealtype": kind,
                "hubspot_owner_id": rng.choice(HUBSPOT_REPS),
                "hs_primary_associated_company": rng.choice(customers),
                "createdate": iso_ms(created),
                f"hs_date_entered_{stage}": iso_ms(min(closed, created + DAY)),
            }
            if outcome != "open":
                props["closedate"] = iso_ms(closed)
            rid = hs.create(
                "deals",
                props,
                modified_ms=max(created, closed if outcome != "open" else created),
                by_user=self._user(props["hubspot_owner_id"]),
            )
            if outcome == "open":
                self.open_deals.append(rid)
        for _ in range(150):
            created = self._ago(rng.uniform(0.5, 200))
            closed = created + int(rng.uniform(1, 96) * 3_600_000)
            done = closed < self.now_ms and rng.random() < 0.8
            props = {
                "subject": "Help",
                "hs_pipeline": "0",
                "hs_pipeline_stage": "4" if done else "1",
                "hubspot_owner_id": rng.choice(HUBSPOT_REPS),
                "hs_primary_company_id": rng.choice(customers),
                "createdate": iso_ms(created),
            }
            if done:
                props["closed_date"] = iso_ms(closed)
            if done or rng.random() < 0.5:  # an agent answered
                replied = created + int(rng.uniform(0.1, 1.0) * (closed - created))
                props["first_agent_reply_date"] = iso_ms(replied)
            hs.create(
                "tickets",
                props,
                modified_ms=closed if done else created,
                by_user=self._user(props["hubspot_owner_id"]),
            )
        for object_type in ("calls", "meetings", "emails"):
            for _ in range(120):
                at = self._ago(rng.uniform(0.2, 120))
                hs.create(
                    object_type,
                    {"hs_timestamp": iso_ms(at), "hubspot_owner_id": rng.choice(HUBSPOT_REPS)},
                    modified_ms=at,
                )
        for i in range(90):
            at = self._ago(rng.uniform(1, 170))
            survey = "NPS" if i % 3 else "CSAT"
            score = (
                rng.choices(range(11), [1, 1, 1, 1, 1, 2, 3, 5, 8, 9, 7])[0]
                if survey == "NPS"
                else rng.choice([1, 2, 3, 4, 4, 5, 5, 5])
            )
            hs.create(
                "feedback_submissions",
                {
                    "hs_survey_type": survey,
                    "hs_response_value": str(score),
                    "hs_submission_timestamp": iso_ms(at),
                },
                modified_ms=at,
            )
        # Pipedrive: a second sales team
        pd = self.pipedrive
        for pd_rep in PIPEDRIVE_REPS:
            pd.add_user(
                f"rep{pd_rep}@demo.test", f"Rep {pd_rep}", user_id=pd_rep, at=self._ago(500) // 1000
            )
        pd.add_user("former@pd.demo.test", "Former rep", user_id=23, at=self._ago(500) // 1000)
        pd.deactivate_user(23)
        home = pd.create(
            "organizations",
            {"name": "Demo Inc (company-wide values)", "owner_id": 21},
            at=(self.now_ms - 400 * DAY) // 1000,
        )
        assert home == HOME_ORGANIZATION, home
        orgs = [
            pd.create(
                "organizations",
                {"name": f"PD customer {i}", "owner_id": rng.choice(PIPEDRIVE_REPS)},
                at=(self.now_ms - 300 * DAY) // 1000,
            )
            for i in range(8)
        ]
        for _ in range(60):
            created = self._ago(rng.uniform(3, 300))
            status = rng.choice(["won", "lost", "open"])
            closed = min(self.now_ms - 3_600_000, created + int(rng.uniform(3, 40) * DAY))
            data: dict[str, Any] = {
                "title": "PD deal",
                "value": rng.randrange(10, 200) * 100,
                "status": status,
                "owner_id": rng.choice(PIPEDRIVE_REPS),
                "org_id": int(rng.choice(orgs)),
                "stage_id": 1,
                "pipeline_id": 1,
                "add_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(created / 1000)),
            }
            if status != "open":
                data[f"{status}_time"] = time.strftime(
                    "%Y-%m-%d %H:%M:%S", time.gmtime(closed / 1000)
                )
            rid = pd.create("deals", data, at=(closed if status != "open" else created) // 1000)
            if status == "open":
                self.pd_open.append(rid)
        self._seed_salesforce()
        self._seed_monday()
        self._seed_zoho()

    def _seed_monday(self) -> None:
        """A fourth team on monday CRM: its Deals and Accounts boards (ids 1000001, 1000002)."""
        rng, mo = self.rng, self.monday
        deals, accounts = mo.add_board("Deals", "deals"), mo.add_board("Accounts", "accounts")
        assert (deals, accounts) == (MONDAY_DEALS_BOARD, MONDAY_ACCOUNTS_BOARD), (deals, accounts)
        # both teams sell to the same customers, kept in HubSpot (as with Pipedrive)
        mo.add_column(deals, "HubSpot company id", "text")
        self.mo_home = mo.create_item(
            accounts, "Demo Inc (company-wide values)", at=(self.now_ms - 400 * DAY) // 1000
        )
        customers = [
            mo.create_item(accounts, f"monday customer {i}", {"Owner": rng.choice(MONDAY_REPS)})
            for i in range(6)
        ]
        for _ in range(40):
            created = self._ago(rng.uniform(3, 300))
            stage = rng.choice(["Won", "Lost", "Proposal", "Negotiation"])
            closed = min(self.now_ms - 3_600_000, created + int(rng.uniform(3, 40) * DAY))
            at = (closed if stage in ("Won", "Lost") else created) // 1000
            rid = mo.create_item(
                deals,
                "monday deal",
                {
                    "Deal stage": stage,
                    "Deal value": rng.randrange(10, 200) * 100,
                    "Owner": rng.choice(MONDAY_REPS),
                    "Accounts": int(rng.choice(customers)),
                    "HubSpot company id": rng.choice(self.companies[1:]),
                },
                at=at,
            )
            if stage not in ("Won", "Lost"):
                self.mo_open.append(rid)

    def _seed_salesforce(self) -> None:
        """A third team on Salesforce: accounts and opportunities, through canonical events."""
        rng = self.rng
        self.salesforce.add_field("Account", "Won_Revenue_QTD__c", "currency")
        self.salesforce.add_field("Account", "Win_Rate_QTD__c", "percent")
        self.sf_home = self.salesforce.create("Account", {"Name": "Demo Inc (company-wide values)"})
        events: list[Event] = []
        for i in range(6):
            events.append(
                Event(
                    source="salesforce",
                    object="account",
                    id=f"sa{i}",
                    op="upsert",
                    version=1,
                    fields={
                        "owner_id": "sf-rep",
                        "domain": f"sf{i}.test",
                        "created_at": iso_ms(self._ago(300)),
                    },
                )
            )
        for i in range(50):
            created = self._ago(rng.uniform(3, 200))
            status = rng.choice(["won", "lost", "open"])
            closed = min(self.now_ms - 86_400_000, created + int(rng.uniform(3, 40) * DAY))
            owner = rng.choice(["sf-rep", "sf-rep-2"])
            events.append(
                Event(
                    source="salesforce",
                    object="deal",
                    id=f"so{i}",
                    op="upsert",
                    version=1,
                    fields={
                        "owner_id": owner,
                        "modified_by": owner,  # its owner changed it last
                        "modified_at": iso_ms(created if status == "open" else closed),
                        "stage": "Prospecting"
                        if status == "open"
                        else ("Closed Won" if status == "won" else "Closed Lost"),
                        "status": status,
                        "type": "new",
                        "amount": str(rng.randrange(20, 300) * 100),
                        "created_at": iso_ms(created),
                        "closed_at": None if status == "open" else iso_ms(closed),
                    },
                )
            )
        self.salesforce.seed_canonical(events)

    def _seed_zoho(self) -> None:
        """A fifth team on Zoho CRM: accounts and deals (Modified_Time in the org's +05:30)."""
        rng, zo = self.rng, self.zoho
        zo.add_field("Deals", "HubSpot Company Id", "text")  # the customers are kept in HubSpot
        self.zoho_home = zo.create(
            "Accounts", {"Account_Name": "Demo Inc (company-wide values)"}, at=self._ago(400) / 1000
        )
        accounts = [
            zo.create("Accounts", {"Account_Name": f"Zoho customer {i}"}, at=self._ago(300) / 1000)
            for i in range(6)
        ]
        for _ in range(60):
            created = self._ago(rng.uniform(3, 300))
            stage = rng.choice(["Closed Won", "Closed Lost", "Qualification", "Negotiation/Review"])
            closed = min(self.now_ms - 3_600_000, created + int(rng.uniform(3, 40) * DAY))
            is_open = not stage.startswith("Closed")
            rid = zo.create(
                "Deals",
                {
                    "Deal_Name": "Zoho deal",
                    "Amount": rng.randrange(10, 250) * 100,
                    "Stage": stage,
                    "Closing_Date": time.strftime("%Y-%m-%d", time.gmtime(closed / 1000)),
                    "Owner": {
                        "name": "Zoho rep",
                        "id": rng.choice(["5725767000000200031", "5725767000000200032"]),
                    },
                    "Account_Name": {"name": "customer", "id": rng.choice(accounts)},
                    "HubSpot_Company_Id": rng.choice(self.companies[1:]),
                },
                at=(created if is_open else closed) / 1000,
            )
            if is_open:
                self.zoho_open.append(rid)

    async def _zoho_change(self, session: aiohttp.ClientSession, runtime_url: str) -> None:
        """An open Zoho deal closes; Zoho notifies the channel with its id."""
        rid = self.zoho_open.pop(self.rng.randrange(len(self.zoho_open)))
        stage = self.rng.choice(["Closed Won", "Closed Won", "Closed Lost"])
        today = time.strftime("%Y-%m-%d", time.gmtime())
        self.zoho.update("Deals", rid, {"Stage": stage, "Closing_Date": today})
        headers, body = self.zoho.notification("Deals", "update", [rid])
        try:
            async with session.post(
                f"{runtime_url}/webhooks/zoho", data=body, headers=headers
            ) as response:
                ok = response.status == 200
        except aiohttp.ClientError:
            ok = False
        if ok:
            self.stats.webhooks_sent += 1
        else:
            self.stats.webhooks_refused += 1

    # ------------------------------------------------------------ live changes
    async def live_change(self, session: aiohttp.ClientSession, runtime_url: str) -> None:
        """One change in a CRM, announced to the runtime as that CRM would."""
        rng = self.rng
        self.stats.changes += 1
        others = {"hubspot", "pipedrive"} & self.live
        if "zoho" in self.live and self.zoho_open and rng.random() < (0.5 if not others else 0.2):
            await self._zoho_change(session, runtime_url)
            return
        if "monday" in self.live and self.mo_open and (rng.random() < 0.25 or not others):
            await self._monday_change(session, runtime_url)
            return
        if not others and "zoho" in self.live and self.zoho_open:
            await self._zoho_change(session, runtime_url)
            return
        if not others or ("hubspot" not in others and not self.pd_open):
            return  # nothing left to change live (Salesforce changes come from polling only)
        if "pipedrive" not in others or (
            "hubspot" in others and (rng.random() < 0.7 or not self.pd_open)
        ):
            if self.open_deals and rng.random() < 0.6:
                rid = self.open_deals.pop(rng.randrange(len(self.open_deals)))
                stage = rng.choice(["closedwon", "closedwon", "closedlost"])
                self.hubspot.update(  # a rep closes it
                    "deals",
                    rid,
                    {"dealstage": stage, "closedate": iso_ms(int(time.time() * 1000))},
                    by_user=self._user(rng.choice(HUBSPOT_REPS)),
                )
            else:
                rid = self.hubspot.create(
                    "deals",
                    {
                        "dealname": "New",
                        "amount": str(rng.randrange(20, 300) * 100),
                        "dealstage": "appointmentscheduled",
                        "pipeline": "default",
                        "dealtype": rng.choice(["newbusiness", "existingbusiness"]),
                        "hubspot_owner_id": rng.choice(HUBSPOT_REPS),
                        "hs_primary_associated_company": rng.choice(self.companies[1:]),
                    },
                )
                self.open_deals.append(rid)
            url = f"{runtime_url}/webhooks/hubspot"
            headers, body = self.hubspot.webhook(
                url, [self.hubspot.change_event("deals", rid, propertyName="dealstage")]
            )
        else:
            rid = self.pd_open.pop(rng.randrange(len(self.pd_open)))
            status = rng.choice(["won", "lost"])
            self.pipedrive.update(
                "deals",
                rid,
                {
                    "status": status,
                    f"{status}_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                },
            )
            url = f"{runtime_url}/webhooks/pipedrive"
            headers, body = self.pipedrive.webhook("change", "deals", rid)
        try:
            async with session.post(url, data=body, headers=headers) as response:
                if response.status == 200:
                    self.stats.webhooks_sent += 1
                else:
                    self.stats.webhooks_refused += 1
        except aiohttp.ClientError:
            self.stats.webhooks_refused += 1

    async def _monday_change(self, session: aiohttp.ClientSession, runtime_url: str) -> None:
        """An open monday deal is won or lost; monday announces it with a JWT-signed webhook."""
        rid = self.mo_open.pop(self.rng.randrange(len(self.mo_open)))
        self.monday.update_item(rid, {"Deal stage": self.rng.choice(["Won", "Won", "Lost"])})
        status = await self.monday.deliver(
            f"{runtime_url}/webhooks/monday",
            "update_column_value",
            rid,
            column_title="Deal stage",
            audience=self.monday_hook or None,
        )
        if status == 200:
            self.stats.webhooks_sent += 1
        else:
            self.stats.webhooks_refused += 1

    async def trickle(self, runtime_url: str, stop: asyncio.Event, every: float = 0.4) -> None:
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                await self.live_change(session, runtime_url)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=every)
