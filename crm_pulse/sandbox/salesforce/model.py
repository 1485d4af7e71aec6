"""The org's vocabulary: key prefixes, standard objects and their fields, read-only fields,
Salesforce's time format, and its error answer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

COLLECTION_MAX = 200
DEFAULT_PAGE = 2000

KEY_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "Lead": "00Q",
    "Opportunity": "006",
    "Case": "500",
    "Task": "00T",
    "Event": "00U",
    "User": "005",
    "ForecastingQuota": "0J9",
    "PermissionSet": "0PS",
    "Period": "026",
    "FieldPermissions": "01k",
}

_SYSTEM = {
    "Id": "id",
    "IsDeleted": "boolean",
    "CreatedDate": "datetime",
    "CreatedById": "reference",
    "LastModifiedDate": "datetime",
    "LastModifiedById": "reference",
    "SystemModstamp": "datetime",
}
STANDARD_FIELDS: dict[str, dict[str, str]] = {
    "Account": {
        "Name": "string",
        "OwnerId": "reference",
        "Website": "url",
        "Type": "picklist",
        "Industry": "picklist",
        "AnnualRevenue": "currency",
    },
    "Contact": {
        "FirstName": "string",
        "LastName": "string",
        "AccountId": "reference",
        "OwnerId": "reference",
        "Email": "email",
    },
    "Lead": {
        "FirstName": "string",
        "LastName": "string",
        "Company": "string",
        "Email": "email",
        "OwnerId": "reference",
        "Status": "picklist",
        "IsConverted": "boolean",
        "ConvertedDate": "date",
        "ConvertedAccountId": "reference",
        "ConvertedContactId": "reference",
        "ConvertedOpportunityId": "reference",
    },
    "Opportunity": {
        "Name": "string",
        "AccountId": "reference",
        "OwnerId": "reference",
        "Amount": "currency",
        "StageName": "picklist",
        "IsClosed": "boolean",
        "IsWon": "boolean",
        "CloseDate": "date",
        "Type": "picklist",
        "Probability": "percent",
        "LastStageChangeDate": "datetime",
    },
    "Case": {
        "Subject": "string",
        "AccountId": "reference",
        "OwnerId": "reference",
        "Status": "picklist",
        "IsClosed": "boolean",
        "ClosedDate": "datetime",
    },
    "Task": {
        "Subject": "string",
        "OwnerId": "reference",
        "AccountId": "reference",
        "WhatId": "reference",
        "WhoId": "reference",
        "Status": "picklist",
        "TaskSubtype": "picklist",
        "ActivityDate": "date",
    },
    "Event": {
        "Subject": "string",
        "OwnerId": "reference",
        "AccountId": "reference",
        "ActivityDateTime": "datetime",
        "ActivityDate": "date",
        "IsAllDayEvent": "boolean",
        "StartDateTime": "datetime",
        "EndDateTime": "datetime",
    },
    "User": {"Name": "string", "Username": "string", "Email": "email", "IsActive": "boolean"},
    "PermissionSet": {"Name": "string", "Label": "string"},
    "Period": {"Type": "picklist", "StartDate": "date", "EndDate": "date"},
    "FieldPermissions": {
        "ParentId": "reference",
        "SobjectType": "string",
        "Field": "string",
        "PermissionsRead": "boolean",
        "PermissionsEdit": "boolean",
    },
    "ForecastingQuota": {
        "QuotaOwnerId": "reference",
        "QuotaAmount": "currency",
        "StartDate": "date",
        "PeriodId": "reference",
    },
}
_READ_ONLY = {
    "Id",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
    "IsClosed",
    "IsWon",
    "LastStageChangeDate",
}


def sf_time(ms: int) -> str:
    """Salesforce's datetime format: ``2026-01-02T09:00:00.123+0000``."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{ms % 1000:03d}+0000"
    )


@dataclass
class _Page:
    records: list[dict[str, Any]]
    all_rows: bool


def _error(status: int, code: str, message: str, headers: Mapping[str, str]) -> web.Response:
    return web.Response(
        text=json.dumps([{"message": message, "errorCode": code}]),
        status=status,
        content_type="application/json",
        headers=dict(headers),
    )
