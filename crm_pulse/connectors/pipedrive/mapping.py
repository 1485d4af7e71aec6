"""Pipedrive records -> canonical events, driven by the deployment file.

Custom fields are named in the deployment file as they are named in Pipedrive (``Deal type``);
:class:`FieldKeys` finds their per-account 40-character hash keys (and enum option labels)
through the field definitions and caches them.

Defaults (``mapping.fields`` overrides any, by field name or key): deals ``status``,
``won_time``/``lost_time`` -> ``closed_at``, ``stage_change_time`` -> ``stage_entered_at``,
``value`` -> ``amount``, ``owner_id``, ``org_id`` -> ``account_id``; organizations -> account;
persons -> contact (``org_id``, first e-mail); activities -> activity (``type``, due time).
Fields crm-pulse writes are never read into canonical ones (loop safety).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Unpack

from ...errors import DataError
from ...metrics.events import Event
from .. import FieldCache, RefreshPolicy, iso_time, time_ms, user_record
from .client import PipedriveClient
from .settings import PipedriveMapping

__all__ = ["CANONICAL", "DELETE_TIE", "FieldKeys", "PipedriveMapper", "to_iso", "to_ms"]

CANONICAL = {
    "deals": "deal",
    "persons": "contact",
    "organizations": "account",
    "activities": "activity",
}
_TIMES = {
    "closed_at",
    "stage_entered_at",
    "created_at",
    "customer_since",
    "churned_at",
    "occurred_at",
    "converted_at",
}

DELETE_TIE = 1
"""Added to a delete's version. Pipedrive's times have one-second resolution, so a record
changed and deleted within one second would give the delete the same version as the change,
and the engine would drop it as stale; one millisecond more makes the delete win the tie (a
deleted record cannot change again in the same second)."""

DEFAULTS: dict[str, dict[str, str]] = {
    "deals": {
        "owner_id": "owner_id",
        "account_id": "org_id",
        "pipeline": "pipeline_id",
        "stage": "stage_id",
        "stage_entered_at": "stage_change_time",
        "amount": "value",
        "created_at": "add_time",
    },
    "organizations": {"owner_id": "owner_id", "created_at": "add_time"},
    "persons": {"owner_id": "owner_id", "account_id": "org_id", "created_at": "add_time"},
    "activities": {"owner_id": "owner_id", "account_id": "org_id"},
}


def to_ms(value: Any) -> int | None:
    """A vendor time -> epoch ms (the kit's :func:`time_ms`; Pipedrive's times are UTC)."""
    return time_ms(value)


def to_iso(value: Any) -> str | None:
    return iso_time(time_ms(value))


class FieldKeys(FieldCache[PipedriveClient]):
    """Custom-field names -> hash keys (and enum option id -> label), per entity, cached
    with the kit's refresh policy (:class:`FieldCache`: again after ``max_age``, and at once
    -- at most every ``refresh_after`` seconds -- for a name it does not know)."""

    def __init__(self, client: PipedriveClient, **policy: Unpack[RefreshPolicy]) -> None:
        super().__init__(client, **policy)
        self.by_name: dict[str, dict[str, str]] = {}
        self.options: dict[str, dict[str, dict[str, str]]] = {}
        self.types: dict[str, dict[str, str]] = {}
        """entity -> field key -> field_type (``double``, ``monetary``, ...)."""

    async def read(self, entity: str, *, retry: bool) -> None:
        names: dict[str, str] = {}
        options: dict[str, dict[str, str]] = {}
        types: dict[str, str] = {}
        for f in await self.client.fields(entity, retry=retry):
            key, name = str(f.get("key")), str(f.get("name"))
            names[name] = key
            names[key] = key
            types[key] = str(f.get("field_type") or "")
            if f.get("options"):
                options[key] = {str(o.get("id")): str(o.get("label")) for o in f["options"]}
        self.by_name[entity] = names
        self.options[entity] = options
        self.types[entity] = types

    def find(self, entity: str, name: str) -> str | None:
        return self.key(entity, name)

    def key(self, entity: str, name: str) -> str | None:
        return self.by_name.get(entity, {}).get(name)

    def field_type(self, entity: str, key: str) -> str | None:
        return self.types.get(entity, {}).get(key)


def _custom(record: Mapping[str, Any], key: str) -> Any:
    custom = record.get("custom_fields") or {}
    if key in custom:
        value = custom[key]
        if isinstance(value, dict):  # monetary {value, currency}, address {...}
            return value.get("value")
        return value
    return record.get(key)


class PipedriveMapper:
    def __init__(self, mapping: PipedriveMapping, source: str, keys: FieldKeys) -> None:
        self.mapping = mapping
        self.source = source
        self.keys = keys
        overrides = mapping.fields.model_dump()
        self.fields = {e: {**d, **(overrides.get(CANONICAL[e]) or {})} for e, d in DEFAULTS.items()}

    def _read(self, entity: str, record: Mapping[str, Any], name: str) -> Any:
        """A standard field, or a custom field by name or key (enum ids become labels)."""
        if name in record:
            return record.get(name)
        key = self.keys.key(entity, name)
        if key is None:
            return None
        value = _custom(record, key)
        labels = self.keys.options.get(entity, {}).get(key)
        if labels and value is not None:
            return labels.get(str(value), value)
        return value

    def complete(self, entity: str, data: Mapping[str, Any]) -> bool:
        """Whether ``data`` (a webhooks v2 ``data``, which carries only essential fields) holds
        every field the mapping reads: then it can be mapped as it is; otherwise the record
        must be read (a field missing from it is not a field that is empty)."""
        m = self.mapping
        props = set(self.fields[entity].values()) | {"update_time"}
        if entity == "deals":
            props |= {"status", "won_time", "lost_time"}
            if m.deal_type is not None:
                props.add(m.deal_type.property)
        elif entity == "organizations":
            props |= {p for p in (m.customer_since_field, m.churned_at_field) if p}
        elif entity == "persons":
            props.add("emails")
            if m.lifecycle is not None:
                props.add(m.lifecycle.property)
        elif entity == "activities":
            props |= {m.activity_type.property, "due_date", "due_time"}
        custom = data.get("custom_fields")
        custom = custom if isinstance(custom, Mapping) else {}
        for prop in props:
            key = self.keys.key(entity, prop) or prop
            if not (key in data or key in custom or prop in data):
                return False
        return True

    @staticmethod
    def version(record: Mapping[str, Any]) -> int:
        ms = to_ms(record.get("update_time")) or to_ms(record.get("add_time"))
        if ms is None:
            raise DataError("no update_time", where=f"Pipedrive record {record.get('id')}")
        return ms

    @property
    def derives_customer_since(self) -> bool:
        """Without a configured field, an organization is a customer from its first won deal."""
        return self.mapping.customer_since_field is None

    async def organization_event(
        self,
        client: PipedriveClient,
        record: Mapping[str, Any],
        history: tuple[str | None, str | None] | None = None,
    ) -> Event:
        """An organization, with customer_since from its first won deal when no field says it;
        its version is the latest change of the organization or of any of its deals, so a deal
        won later re-states the organization. ``history`` is (first won_time, latest deal
        update_time) when the caller already knows it (a full backfill read every deal);
        otherwise the organization's deals are listed."""
        if not self.derives_customer_since:
            return self.event("organizations", record)
        first_won, latest = (
            history if history is not None else await client.org_deal_history(str(record.get("id")))
        )
        version = max(self.version(record), to_ms(latest) or 0)
        event = self.event("organizations", record, version=version)
        if event.op == "delete":
            return event
        fields = {**event.fields, "customer_since": to_iso(first_won)}
        return Event(
            source=event.source,
            object=event.object,
            id=event.id,
            op="upsert",
            version=version,
            fields=fields,
        )

    def user_event(self, user: Mapping[str, Any]) -> Event:
        """A canonical ``user`` for one user of ``GET /v1/users``: ``id`` is the user id that
        records carry in ``owner_id``; the version is ``modified``. Pipedrive keeps no
        deactivation date: an inactive user (``active_flag`` false, or deleted from the
        company) is deactivated at its last change, with a version one millisecond after it,
        so the inactive state wins over the active one at an equal ``modified``."""
        rid = str(user.get("id") or "")
        if not rid:
            raise DataError("a user without an id", where="Pipedrive users")
        where = f"Pipedrive user {rid}"
        try:
            last = user.get("modified") or user.get("created")
            modified = to_ms(last)
            if modified is None:
                raise DataError("no modified or created time")
            created_at = to_iso(user.get("created"))
            changed_at = to_iso(last)
        except DataError as exc:
            raise DataError(exc.reason, where=where) from None
        return user_record(
            self.source,
            rid,
            email=user.get("email"),
            created_at=created_at,
            changed_ms=modified,
            changed_at=changed_at,
            deactivated=user.get("active_flag") is False or user.get("is_deleted") is True,
        )

    def event(self, entity: str, record: Mapping[str, Any], version: int | None = None) -> Event:
        rid = str(record.get("id"))
        where = f"Pipedrive {entity} {rid}"
        canonical = CANONICAL[entity]
        v = version if version is not None else self.version(record)
        if record.get("is_deleted") or record.get("status") == "deleted":
            return Event(
                source=self.source, object=canonical, id=rid, op="delete", version=v + DELETE_TIE
            )
        try:
            fields: dict[str, Any] = {}
            for name, prop in self.fields[entity].items():
                value = self._read(entity, record, prop)
                fields[name] = (
                    to_iso(value)
                    if name in _TIMES
                    else (None if value in ("", None) else str(value))
                )
            m = self.mapping
            if entity == "deals":
                status = str(record.get("status") or "open")
                fields["status"] = status
                closed = (
                    record.get("won_time")
                    if status == "won"
                    else record.get("lost_time")
                    if status == "lost"
                    else None
                )
                fields["closed_at"] = to_iso(closed)
                if m.deal_type is not None:
                    raw = self._read(entity, record, m.deal_type.property)
                    fields["type"] = (
                        m.deal_type.values.get(str(raw), m.deal_type.default)
                        if raw not in (None, "")
                        else m.deal_type.default
                    )
            elif entity == "organizations":
                if m.customer_since_field:
                    fields["customer_since"] = to_iso(
                        self._read(entity, record, m.customer_since_field)
                    )
                if m.churned_at_field:
                    fields["churned_at"] = to_iso(self._read(entity, record, m.churned_at_field))
            elif entity == "persons":
                emails = record.get("emails") or record.get("email") or []
                primary = next(
                    (e.get("value") for e in emails if isinstance(e, dict) and e.get("primary")),
                    None,
                )
                fields["email"] = primary or next(
                    (e.get("value") for e in emails if isinstance(e, dict)), None
                )
                if m.lifecycle is not None:
                    raw = self._read(entity, record, m.lifecycle.property)
                    fields["lifecycle"] = m.lifecycle.values.get(str(raw), m.lifecycle.default)
            elif entity == "activities":
                raw = self._read(entity, record, m.activity_type.property)
                fields["type"] = m.activity_type.values.get(str(raw), m.activity_type.default)
                day, at = record.get("due_date"), record.get("due_time") or "00:00"
                fields["occurred_at"] = to_iso(f"{day}T{at}") if day else None
            return Event(
                source=self.source, object=canonical, id=rid, op="upsert", version=v, fields=fields
            )
        except DataError as exc:
            raise DataError(exc.reason, where=where) from None
        except ValueError as exc:
            raise DataError(str(exc).splitlines()[0], where=where) from None
