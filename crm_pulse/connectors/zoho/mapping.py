"""Zoho CRM records -> canonical events, driven by the deployment file.

Modules: Accounts -> account; Contacts and Leads -> contact (Leads are ``lifecycle: lead``);
Deals -> deal; Cases -> ticket; Calls, Events (Meetings) and Tasks -> activity. Zoho record ids
are unique across modules, so a contact's id says which module it came from without a prefix.

A deal's status comes from its Stage: ``mapping.deal_stages`` first, else the Stage picklist's
own metadata read from the fields API (forecast type ``Closed Won`` / ``Closed Lost``, or a
``Closed`` forecast category with probability 100 / 0), else the deal's Probability (100 won,
0 with a stage named ``Closed...`` lost), else open. Versions are ``Modified_Time`` in epoch
milliseconds (one-second resolution); deletes get ``deleted_time`` + :data:`DELETE_TIE`.
:class:`FieldCatalog` caches each module's field metadata (labels -> API names for write-back,
the Stage picklist). Fields crm-pulse writes are never read into canonical ones (loop safety).
``modified_by`` / ``modified_at`` are ``Modified_By`` (its id) / ``Modified_Time`` on every
module, both null when the last change was made by the user crm-pulse's token acts as (its
write-backs: their echoes then change no canonical field).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Unpack

from ...errors import DataError
from ...metrics.events import Event
from .. import FieldCache, RefreshPolicy, iso_time, time_ms
from .client import ZohoClient
from .settings import ZohoMapping

__all__ = [
    "CANONICAL",
    "DELETE_TIE",
    "FieldCatalog",
    "ZohoMapper",
    "stage_status",
    "to_iso",
    "to_ms",
]

CANONICAL = {
    "Accounts": "account",
    "Contacts": "contact",
    "Leads": "contact",
    "Deals": "deal",
    "Cases": "ticket",
    "Calls": "activity",
    "Events": "activity",
    "Tasks": "activity",
}
OBJECT_MODULE = {"account": "Accounts", "contact": "Contacts", "deal": "Deals", "ticket": "Cases"}
"""Canonical object (write-back target) -> the module written."""

DELETE_TIE = 1
"""Added to a delete's version: Zoho's times have one-second resolution, and a record changed
and deleted within one second must end deleted."""

_TIMES = {
    "closed_at",
    "stage_entered_at",
    "created_at",
    "customer_since",
    "churned_at",
    "occurred_at",
    "converted_at",
    "modified_at",
}
_CHANGED = {"modified_by": "Modified_By", "modified_at": "Modified_Time"}
"""Who changed a record last, and when (CRM adoption): on every module."""

DEFAULTS: dict[str, dict[str, str]] = {
    "Accounts": {"owner_id": "Owner", "created_at": "Created_Time"},
    "Contacts": {
        "owner_id": "Owner",
        "account_id": "Account_Name",
        "email": "Email",
        "created_at": "Created_Time",
    },
    "Leads": {"owner_id": "Owner", "email": "Email", "created_at": "Created_Time"},
    "Deals": {
        "owner_id": "Owner",
        "account_id": "Account_Name",
        "pipeline": "Pipeline",
        "stage": "Stage",
        "amount": "Amount",
        "created_at": "Created_Time",
    },
    "Cases": {"owner_id": "Owner", "account_id": "Account_Name", "created_at": "Created_Time"},
    "Calls": {"owner_id": "Owner", "occurred_at": "Call_Start_Time"},
    "Events": {"owner_id": "Owner", "occurred_at": "Start_DateTime"},
    "Tasks": {"owner_id": "Owner", "occurred_at": "Due_Date"},
}
_EXTRA = {
    "Deals": ["Closing_Date", "Probability", "Type"],
    "Cases": ["Status"],
    "Calls": ["What_Id"],
    "Events": ["What_Id"],
    "Tasks": ["What_Id", "Closed_Time", "Status"],
}
_ACTIVITY = {"Calls": "call", "Events": "meeting", "Tasks": "task"}
_OVERRIDE_KEY = {"Leads": "contact"}


def to_ms(value: Any) -> int | None:
    """A vendor time -> epoch ms (the kit's :func:`time_ms`; Zoho's dates are days in UTC; its date-times carry offsets)."""
    return time_ms(value)


def to_iso(value: Any) -> str | None:
    return iso_time(time_ms(value))


def _scalar(value: Any) -> Any:
    """A lookup or user ``{"name", "id"}`` -> its id; anything else as it is."""
    if isinstance(value, dict):
        return value.get("id")
    return value


def stage_status(option: Mapping[str, Any]) -> str | None:
    """open/won/lost from a Stage picklist option's metadata, or None if it says nothing."""
    forecast_type = str(option.get("forecast_type") or "").lower()
    if forecast_type in ("closed won", "won"):
        return "won"
    if forecast_type in ("closed lost", "lost"):
        return "lost"
    if forecast_type == "open":
        return "open"
    category = option.get("forecast_category")
    name = str(category.get("name") if isinstance(category, dict) else category or "").lower()
    probability = option.get("probability")
    if name == "closed" and probability is not None:
        return "won" if float(probability) >= 100 else "lost" if float(probability) <= 0 else None
    if name == "omitted" and probability is not None and float(probability) <= 0:
        return "lost"
    if name in ("pipeline", "commit", "best case"):
        return "open"
    return None


class FieldCatalog(FieldCache[ZohoClient]):
    """Per module: field label / API name -> API name, and the Deals Stage picklist's
    statuses; read through the fields API and cached with the kit's refresh policy
    (:class:`FieldCache`: again after ``max_age``, and at once -- at most every
    ``refresh_after`` seconds -- for a name it does not know: fields created by ``crm-pulse
    provision`` in another process are found without a restart; :meth:`reread` for a stage
    added to the picklist since)."""

    def __init__(self, client: ZohoClient, **policy: Unpack[RefreshPolicy]) -> None:
        super().__init__(client, **policy)
        self.names: dict[str, dict[str, str]] = {}
        self.stages: dict[str, str] = {}

    async def read(self, module: str, *, retry: bool) -> None:
        names: dict[str, str] = {}
        for f in await self.client.fields(module, retry=retry):
            api = str(f.get("api_name") or "")
            if not api:
                continue
            names[api] = api
            label = f.get("field_label") or f.get("display_label")
            if label:
                names.setdefault(str(label), api)
            if module == "Deals" and api == "Stage":
                for option in f.get("pick_list_values") or []:
                    status = stage_status(option)
                    value = option.get("actual_value") or option.get("display_value")
                    if status is not None and value:
                        self.stages[str(value)] = status
        self.names[module] = names

    def find(self, module: str, name: str) -> str | None:
        return self.api_name(module, name)

    def api_name(self, module: str, name: str) -> str | None:
        return self.names.get(module, {}).get(name)


class ZohoMapper:
    def __init__(self, mapping: ZohoMapping, source: str, catalog: FieldCatalog) -> None:
        self.mapping = mapping
        self.source = source
        self.catalog = catalog
        overrides = mapping.fields.model_dump()
        self.fields = {
            module: {
                **_CHANGED,
                **d,
                **(overrides.get(_OVERRIDE_KEY.get(module, CANONICAL[module])) or {}),
            }
            for module, d in DEFAULTS.items()
        }
        self.own_user: str | None = None
        """The user crm-pulse's token acts as: its changes are our write-backs, no one's
        adoption, and leaving them out keeps their echoes free of canonical changes."""

    def learn_own_user(self, user_id: str) -> None:
        self.own_user = user_id

    def api_fields(self, module: str) -> list[str]:
        """The fields to ask Zoho for (at most 50; ``id`` always comes)."""
        m = self.mapping
        wanted = ["Modified_Time", *self.fields[module].values(), *_EXTRA.get(module, [])]
        if module == "Deals":
            wanted.append(m.deal_type.property)
        elif module == "Accounts":
            wanted += [f for f in (m.customer_since_field, m.churned_at_field) if f]
        elif module == "Contacts" and m.lifecycle is not None:
            wanted.append(m.lifecycle.property)
        elif module == "Tasks" and m.task_type is not None:
            wanted.append(m.task_type.property)
        return list(dict.fromkeys(wanted))[:50]

    @staticmethod
    def version(record: Mapping[str, Any]) -> int:
        ms = to_ms(record.get("Modified_Time")) or to_ms(record.get("Created_Time"))
        if ms is None:
            raise DataError("no Modified_Time", where=f"Zoho record {record.get('id')}")
        return ms

    def deleted(self, module: str, item: Mapping[str, Any]) -> Event:
        """A Get Deleted Records item -> a delete event."""
        rid = str(item.get("id"))
        when = to_ms(item.get("deleted_time"))
        if when is None:
            raise DataError("no deleted_time", where=f"Zoho deleted {module} {rid}")
        return Event(
            source=self.source,
            object=CANONICAL[module],
            id=rid,
            op="delete",
            version=when + DELETE_TIE,
        )

    def deal_status(self, record: Mapping[str, Any]) -> str:
        stage = str(record.get("Stage") or "")
        if stage in self.mapping.deal_stages:
            return self.mapping.deal_stages[stage]
        if stage in self.catalog.stages:
            return self.catalog.stages[stage]
        probability = record.get("Probability")
        if probability is not None:
            if float(probability) >= 100:
                return "won"
            if float(probability) <= 0 and stage.lower().startswith("closed"):
                return "lost"
        return "open"

    def unknown_stages(self, records: Iterable[Mapping[str, Any]]) -> set[str]:
        known = self.mapping.deal_stages.keys() | self.catalog.stages.keys()
        return {str(r.get("Stage")) for r in records if r.get("Stage") and r["Stage"] not in known}

    def event(self, module: str, record: Mapping[str, Any]) -> Event:
        rid = str(record.get("id"))
        where = f"Zoho {module} {rid}"
        try:
            version = self.version(record)
            fields: dict[str, Any] = {}
            for name, api in self.fields[module].items():
                value = _scalar(record.get(api))
                fields[name] = (
                    to_iso(value)
                    if name in _TIMES
                    else (None if value in ("", None) else str(value))
                )
            self._specifics(module, record, fields)
            if self.own_user and fields.get("modified_by") == self.own_user:
                fields["modified_by"] = fields["modified_at"] = None  # our write-back
            return Event(
                source=self.source,
                object=CANONICAL[module],
                id=rid,
                op="upsert",
                version=version,
                fields=fields,
            )
        except DataError as exc:
            raise DataError(exc.reason, where=where) from None
        except (ValueError, TypeError) as exc:
            raise DataError(str(exc).splitlines()[0], where=where) from None

    def _specifics(self, module: str, record: Mapping[str, Any], fields: dict[str, Any]) -> None:
        m = self.mapping
        if module == "Deals":
            status = self.deal_status(record)
            fields["status"] = status
            if "closed_at" not in self.fields[module]:
                fields["closed_at"] = (
                    to_iso(record.get("Closing_Date")) if status != "open" else None
                )
            raw = record.get(m.deal_type.property)
            fields["type"] = (
                m.deal_type.values.get(str(raw), m.deal_type.default)
                if raw not in (None, "")
                else m.deal_type.default
            )
        elif module == "Accounts":
            if m.customer_since_field:
                fields["customer_since"] = to_iso(record.get(m.customer_since_field))
            if m.churned_at_field:
                fields["churned_at"] = to_iso(record.get(m.churned_at_field))
        elif module == "Leads":
            fields["lifecycle"] = "lead"
        elif module == "Contacts" and m.lifecycle is not None:
            raw = record.get(m.lifecycle.property)
            fields["lifecycle"] = m.lifecycle.values.get(str(raw), m.lifecycle.default)
        elif module == "Cases":
            status = str(record.get("Status") or "")
            closed = m.ticket_status_override.get(
                status, "closed" if status in m.ticket_closed else "open"
            )
            fields["status"] = closed
        elif module in _ACTIVITY:
            kind = _ACTIVITY[module]
            if module == "Tasks" and m.task_type is not None:
                raw = record.get(m.task_type.property)
                kind = str(m.task_type.values.get(str(raw), m.task_type.default) or "task")
            fields["type"] = kind
            what = record.get("What_Id")
            if "account_id" not in self.fields[module]:
                is_account = isinstance(what, dict) and record.get("$se_module") == "Accounts"
                fields["account_id"] = str(what.get("id")) if is_account and what else None
            if module == "Tasks" and record.get("Closed_Time"):
                fields["occurred_at"] = to_iso(record.get("Closed_Time"))
