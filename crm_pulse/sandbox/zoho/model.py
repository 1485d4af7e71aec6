"""The org's vocabulary: its modules, standard and common fields, the Deals stages, the users
changes are made by, and the error body every API answers with."""

from __future__ import annotations

from typing import Any

from aiohttp import web

MODULES = ("Accounts", "Contacts", "Leads", "Deals", "Cases", "Calls", "Events", "Tasks")
STAGES = (
    # actual value, forecast type, forecast category, probability
    ("Qualification", "Open", "Pipeline", 10),
    ("Needs Analysis", "Open", "Pipeline", 20),
    ("Proposal/Price Quote", "Open", "Best Case", 75),
    ("Negotiation/Review", "Open", "Commit", 90),
    ("Closed Won", "Closed Won", "Closed", 100),
    ("Closed Lost", "Closed Lost", "Omitted", 0),
)
_STANDARD: dict[str, list[tuple[str, str, str]]] = {
    # module -> (api_name, label, data_type)
    "Accounts": [("Account_Name", "Account Name", "text")],
    "Contacts": [
        ("Last_Name", "Last Name", "text"),
        ("Email", "Email", "email"),
        ("Account_Name", "Account Name", "lookup"),
    ],
    "Leads": [("Last_Name", "Last Name", "text"), ("Email", "Email", "email")],
    "Deals": [
        ("Deal_Name", "Deal Name", "text"),
        ("Amount", "Amount", "currency"),
        ("Stage", "Stage", "picklist"),
        ("Probability", "Probability (%)", "integer"),
        ("Closing_Date", "Closing Date", "date"),
        ("Type", "Type", "picklist"),
        ("Pipeline", "Pipeline", "picklist"),
        ("Account_Name", "Account Name", "lookup"),
    ],
    "Cases": [
        ("Subject", "Subject", "text"),
        ("Status", "Status", "picklist"),
        ("Account_Name", "Account Name", "lookup"),
    ],
    "Calls": [("Subject", "Subject", "text"), ("Call_Start_Time", "Call Start Time", "datetime")],
    "Events": [("Event_Title", "Title", "text"), ("Start_DateTime", "From", "datetime")],
    "Tasks": [
        ("Subject", "Subject", "text"),
        ("Due_Date", "Due Date", "date"),
        ("Status", "Status", "picklist"),
        ("Closed_Time", "Closed Time", "datetime"),
    ],
}
_COMMON = [
    ("Owner", "Owner", "ownerlookup"),
    ("Created_By", "Created By", "ownerlookup"),
    ("Created_Time", "Created Time", "datetime"),
    ("Modified_By", "Modified By", "ownerlookup"),
    ("Modified_Time", "Modified Time", "datetime"),
    ("What_Id", "Related To", "lookup"),
]
_ID_BASE = 5_725_767_000_000_100_000
REP = {"name": "Rep One", "id": "5725767000000200001", "email": "rep@x.test"}
"""The user seeding changes the org (as a person in the web UI would)."""
API_USER = {"name": "crm-pulse", "id": "5725767000000200002", "email": "crm-pulse@x.test"}
"""The user the OAuth client acts as: API updates are made by it (``users?type=CurrentUser``)."""


def _error(status: int, code: str, message: str, **details: Any) -> web.Response:
    return web.json_response(
        {"code": code, "details": details, "message": message, "status": "error"}, status=status
    )
