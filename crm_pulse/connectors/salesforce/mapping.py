"""Salesforce records -> canonical events, driven by the deployment file.

:data:`OBJECTS` is the declarative table of defaults (sObject -> canonical object, canonical
field -> Salesforce field); ``mapping.fields`` overrides entries. Opportunity status comes from
``IsClosed``/``IsWon``, its type from the ``Type`` picklist through ``mapping.deal_type``, and
``stage_entered_at`` from ``LastStageChangeDate``. Leads and Contacts are both canonical
contacts (a Lead is a ``lead``); Events are meetings. The configured survey object gives
survey responses, and ``ForecastingQuota`` gives quarterly quotas when enabled.

Custom fields crm-pulse writes are never read into canonical fields (loop safety).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ...config.models import SalesforceMapping
from ...errors import DataError
from ...metrics.events import Event

__all__ = ["OBJECTS", "ObjectSpec", "SalesforceMapper", "to_iso", "to_ms"]


@dataclass(frozen=True)
class ObjectSpec:
    canonical: str
    fields: Mapping[str, str]
    extra: tuple[str, ...] = ()
    constant: Mapping[str, str] = field(default_factory=dict)


OBJECTS: dict[str, ObjectSpec] = {
    "Account": ObjectSpec(
        "account", {"owner_id": "OwnerId", "domain": "Website", "created_at": "CreatedDate"}
    ),
    "Contact": ObjectSpec(
        "contact",
        {
            "account_id": "AccountId",
            "owner_id": "OwnerId",
            "email": "Email",
            "created_at": "CreatedDate",
        },
    ),
    "Lead": ObjectSpec(
        "contact",
        {
            "owner_id": "OwnerId",
            "email": "Email",
            "created_at": "CreatedDate",
            "converted_at": "ConvertedDate",
        },
        constant={"lifecycle": "lead"},
    ),
    "Opportunity": ObjectSpec(
        "deal",
        {
            "account_id": "AccountId",
            "owner_id": "OwnerId",
            "stage": "StageName",
            "stage_entered_at": "LastStageChangeDate",
            "amount": "Amount",
            "created_at": "CreatedDate",
            "closed_at": "CloseDate",
        },
        extra=("IsClosed", "IsWon", "Type"),
    ),
    "Case": ObjectSpec(
        "ticket",
        {
            "account_id": "AccountId",
            "owner_id": "OwnerId",
            "created_at": "CreatedDate",
            "closed_at": "ClosedDate",
        },
        extra=("IsClosed",),
    ),
    "Task": ObjectSpec(
        "activity",
        {"owner_id": "OwnerId", "account_id": "AccountId", "occurred_at": "ActivityDate"},
    ),
    "Event": ObjectSpec(
        "activity",
        {"owner_id": "OwnerId", "account_id": "AccountId", "occurred_at": "ActivityDateTime"},
        constant={"type": "meeting"},
    ),
    "ForecastingQuota": ObjectSpec(
        "quota",
        {"owner_id": "QuotaOwnerId", "amount": "QuotaAmount", "period_start": "StartDate"},
        constant={"period": "quarter"},
    ),
}
SURVEY_DEFAULTS = {
    "account_id": "Account__c",
    "contact_id": "Contact__c",
    "score": "Score__c",
    "submitted_at": "CreatedDate",
}
_TIMES = {
    "created_at",
    "closed_at",
    "stage_entered_at",
    "converted_at",
    "occurred_at",
    "submitted_at",
    "customer_since",
    "churned_at",
}


def to_ms(value: Any) -> int | None:
    if value in (None, ""):
        return None
    text = str(value).strip()
    if len(text) == 10:
        text += "T00:00:00+00:00"
    text = text.replace("Z", "+00:00")
    if text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]  # +0000 -> +00:00
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise DataError(f"not a date or time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def to_iso(value: Any) -> str | None:
    ms = to_ms(value)
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    )


class SalesforceMapper:
    def __init__(self, mapping: SalesforceMapping, source: str) -> None:
        self.mapping = mapping
        self.source = source
        overrides = mapping.fields.model_dump()
        self.specs: dict[str, ObjectSpec] = {}
        for sobject, spec in OBJECTS.items():
            merged = {**spec.fields, **(overrides.get(spec.canonical) or {})}
            self.specs[sobject] = ObjectSpec(spec.canonical, merged, spec.extra, spec.constant)
        if mapping.survey_object:
            merged = {**SURVEY_DEFAULTS, **(overrides.get("survey_response") or {})}
            self.specs[mapping.survey_object] = ObjectSpec(
                "survey_response", merged, extra=(mapping.survey_type.property,)
            )

    def soql_fields(self, sobject: str) -> list[str]:
        spec = self.specs[sobject]
        names = {"Id", "SystemModstamp", *spec.fields.values(), *spec.extra}
        if sobject == "Task":
            names.add(self.mapping.activity_type.property)
        if sobject == "Opportunity":
            names.add(self.mapping.deal_type.property)
        return sorted(names)

    @staticmethod
    def version(record: Mapping[str, Any]) -> int:
        ms = to_ms(record.get("SystemModstamp"))
        if ms is None:
            raise DataError("no SystemModstamp", where=f"Salesforce record {record.get('Id')}")
        return ms

    def event(self, sobject: str, record: Mapping[str, Any]) -> Event:
        rid = str(record.get("Id"))
        spec = self.specs[sobject]
        version = self.version(record)
        if record.get("IsDeleted"):
            return Event(
                source=self.source, object=spec.canonical, id=rid, op="delete", version=version
            )
        m = self.mapping
        try:
            fields: dict[str, Any] = dict(spec.constant)
            for name, prop in spec.fields.items():
                value = record.get(prop)
                if name == "period_start":
                    fields[name] = None if value is None else str(value)[:10]
                elif name in _TIMES:
                    fields[name] = to_iso(value)
                else:
                    fields[name] = (
                        None
                        if value in ("", None)
                        else value
                        if isinstance(value, int | float) and name in ("amount", "score")
                        else str(value)
                    )
            if sobject == "Opportunity":
                closed, won = bool(record.get("IsClosed")), bool(record.get("IsWon"))
                fields["status"] = ("won" if won else "lost") if closed else "open"
                if not closed:
                    fields["closed_at"] = None
                fields["stage_entered_at"] = fields.get("stage_entered_at") or fields.get(
                    "created_at"
                )
                raw = record.get(m.deal_type.property)
                fields["type"] = (
                    m.deal_type.values.get(str(raw), m.deal_type.default)
                    if raw not in (None, "")
                    else m.deal_type.default
                )
            elif sobject == "Case":
                fields["status"] = "closed" if record.get("IsClosed") else "open"
                if fields["status"] == "open":
                    fields["closed_at"] = None
            elif sobject == "Task":
                raw = record.get(m.activity_type.property)
                fields["type"] = m.activity_type.values.get(str(raw), m.activity_type.default)
            elif spec.canonical == "survey_response":
                raw = record.get(m.survey_type.property)
                fields["survey"] = m.survey_type.values.get(str(raw), m.survey_type.default)
            return Event(
                source=self.source,
                object=spec.canonical,
                id=rid,
                op="upsert",
                version=version,
                fields=fields,
            )
        except DataError as exc:
            raise DataError(exc.reason, where=f"Salesforce {sobject} {rid}") from None
        except ValueError as exc:
            raise DataError(str(exc).splitlines()[0], where=f"Salesforce {sobject} {rid}") from None
