"""Filling an org from canonical events (the sandbox and the demo start from those)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ...metrics.events import Event
from .model import sf_time
from .soql import time_ms
from .state import _Org


class _Seeding(_Org):
    """Seeding from canonical events."""

    def seed_canonical(self, events: Iterable[Event]) -> dict[tuple[str, str], str]:
        """Fill the org from canonical events (the sandbox and the demo start from those).

        The newest event of each record wins; deletes go to the recycle bin. Accounts, owners
        (as Users), contacts (Leads when ``lifecycle`` is lead), deals, tickets, activities
        (meetings as Events, the rest as Tasks; notes become Tasks) and quotas become records
        that the connector's default mapping reads back as the same canonical fields (dates of
        closing become CloseDate, read back as noon UTC of that day). Returns
        ``(object, canonical id) -> Salesforce id``.
        """
        latest: dict[tuple[str, str], Event] = {}
        for event in events:
            key = (event.object, event.id)
            if key not in latest or event.version > latest[key].version:
                latest[key] = event
        ids: dict[tuple[str, str], str] = {}
        owners: dict[str, str] = {}

        def owner(value: Any) -> str | None:
            if value is None:
                return None
            if str(value) not in owners:
                owners[str(value)] = self.create(
                    "User", {"Name": f"Owner {value}", "Username": f"{value}@example.test"}
                )
            return owners[str(value)]

        def ref(obj: str, value: Any) -> str | None:
            return None if value is None else ids.get((obj, str(value)), str(value))

        def day(value: Any) -> str | None:
            return None if value is None else _date_of(str(value))

        def stamp(value: Any) -> str | None:
            return None if value is None else sf_time(time_ms(str(value)))

        order = ["account", "contact", "deal", "ticket", "activity", "quota"]
        for event in sorted(
            (e for e in latest.values() if e.object in order),
            key=lambda e: (order.index(e.object), e.version),
        ):
            f = event.fields
            own = owner(f.get("owner_id"))
            if event.object == "account":
                sobject, values = (
                    "Account",
                    {
                        "Name": f"Account {event.id}",
                        "OwnerId": own,
                        "Website": f.get("domain"),
                        "CreatedDate": stamp(f.get("created_at")),
                    },
                )
            elif event.object == "contact" and f.get("lifecycle") == "lead":
                converted = f.get("converted_at") is not None
                sobject, values = (
                    "Lead",
                    {
                        "LastName": f"Lead {event.id}",
                        "Company": "Unknown",
                        "OwnerId": own,
                        "Email": f.get("email"),
                        "IsConverted": converted,
                        "ConvertedDate": day(f.get("converted_at")),
                        "ConvertedAccountId": ref("account", f.get("account_id")),
                        "CreatedDate": stamp(f.get("created_at")),
                    },
                )
            elif event.object == "contact":
                sobject, values = (
                    "Contact",
                    {
                        "LastName": f"Contact {event.id}",
                        "AccountId": ref("account", f.get("account_id")),
                        "OwnerId": own,
                        "Email": f.get("email"),
                        "CreatedDate": stamp(f.get("created_at")),
                    },
                )
            elif event.object == "deal":
                status = f.get("status") or "open"
                stage = {"won": "Closed Won", "lost": "Closed Lost"}.get(
                    status, f.get("stage") or "Prospecting"
                )
                sobject, values = (
                    "Opportunity",
                    {
                        "Name": f"Deal {event.id}",
                        "AccountId": ref("account", f.get("account_id")),
                        "OwnerId": own,
                        "StageName": stage,
                        "Amount": None if f.get("amount") is None else float(f["amount"]),
                        "CloseDate": day(f.get("closed_at")),
                        "Type": _DEAL_TYPES.get(str(f.get("type"))),
                        "CreatedDate": stamp(f.get("created_at")),
                    },
                )
            elif event.object == "ticket":
                sobject, values = (
                    "Case",
                    {
                        "Subject": f"Case {event.id}",
                        "AccountId": ref("account", f.get("account_id")),
                        "OwnerId": own,
                        "Status": "Closed" if f.get("status") == "closed" else "New",
                        "CreatedDate": stamp(f.get("created_at")),
                    },
                )
            elif event.object == "activity" and f.get("type") == "meeting":
                sobject, values = (
                    "Event",
                    {
                        "Subject": f"Meeting {event.id}",
                        "OwnerId": own,
                        "AccountId": ref("account", f.get("account_id")),
                        "ActivityDateTime": stamp(f.get("occurred_at")),
                    },
                )
            elif event.object == "activity":
                sobject, values = (
                    "Task",
                    {
                        "Subject": f"{f.get('type') or 'task'} {event.id}",
                        "OwnerId": own,
                        "AccountId": ref("account", f.get("account_id")),
                        "TaskSubtype": {"call": "Call", "email": "Email"}.get(
                            str(f.get("type")), "Task"
                        ),
                        "ActivityDate": day(f.get("occurred_at")),
                    },
                )
            else:
                sobject, values = (
                    "ForecastingQuota",
                    {
                        "QuotaOwnerId": own,
                        "QuotaAmount": None if f.get("amount") is None else float(f["amount"]),
                        "StartDate": None
                        if f.get("period_start") is None
                        else str(f["period_start"]),
                    },
                )
            rid = self.create(sobject, values, modified_ms=event.version)
            with self._lock:
                record = self.records[sobject][rid]
                if sobject == "Opportunity":
                    record["LastStageChangeDate"] = stamp(f.get("stage_entered_at"))
                elif sobject == "Case":
                    record["ClosedDate"] = stamp(f.get("closed_at"))
                if f.get("modified_by") is not None:  # who changed it last, and when
                    record["LastModifiedById"] = owner(f["modified_by"])
                if f.get("modified_at") is not None:
                    record["LastModifiedDate"] = stamp(f["modified_at"])
            ids[(event.object, event.id)] = rid
            if event.op == "delete":
                self.delete(sobject, rid)
        return ids


_DEAL_TYPES = {
    "new": "New Customer",
    "upsell": "Existing Customer - Upgrade",
    "renewal": "Renewal",
    "other": "Existing Customer - Replacement",
}


def _date_of(text: str) -> str:
    """The UTC calendar date of an ISO time (or the date itself)."""
    if len(text) == 10:
        return text
    return datetime.fromtimestamp(time_ms(text) // 1000, UTC).date().isoformat()
