"""The company's year: a reproducible history seeded into every CRM."""

from __future__ import annotations

import time
from typing import Any

from ...metrics.events import Event
from ..hubspot import iso_ms
from .model import (
    _STAGES,
    DAY,
    HOME_ORGANIZATION,
    HUBSPOT_REPS,
    MONDAY_ACCOUNTS_BOARD,
    MONDAY_DEALS_BOARD,
    MONDAY_REPS,
    PIPEDRIVE_REPS,
)
from .servers import _Company


class _Year(_Company):
    """Seeding the company's year."""

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
