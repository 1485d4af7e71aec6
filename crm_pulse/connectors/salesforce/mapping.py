"""Salesforce records -> canonical events (metrics-spec section 1), driven by the deployment file.

Which sObject becomes which canonical object, and which field holds each canonical field, is
the declarative table :data:`OBJECTS`; ``mapping.fields`` in the deployment file overrides any
entry (an override names one Salesforce field). A few canonical fields are derived rather than
read, each from standard fields every org has:

* deal ``status``: ``IsClosed``/``IsWon`` (open, won, lost); ``closed_at`` only when closed;
* deal ``type``: the ``Type`` picklist through ``mapping.deal_type`` (values -> new / upsell /
  renewal / other);
* deal ``stage_entered_at``: ``LastStageChangeDate`` (set by Salesforce on every stage change,
  API 52.0+), or ``CreatedDate`` for a deal still in its first stage;
* ticket ``status``: ``IsClosed``;
* ``modified_by`` / ``modified_at`` (who changed a record last, for CRM adoption):
  ``LastModifiedById`` / ``LastModifiedDate`` on every object but users and quotas; both null
  when the last change was made by the API user crm-pulse writes as (its write-backs), so their
  echoes change no canonical field;
* contact ``lifecycle``: Leads are ``lead`` (``converted_at`` = ``ConvertedDate``), Contacts are
  ``other``; a converted Lead keeps no e-mail (the Contact it became carries it, so the person is
  not counted twice as a duplicate);
* activity ``type``: Tasks through ``mapping.activity_type`` (``TaskSubtype``), Events are meetings
  (an all-day Event has no ``ActivityDateTime``: its ``ActivityDate`` is used);
* survey ``survey``: ``mapping.survey_type`` on the configured survey object;
* quota: ``ForecastingQuota`` (``QuotaOwnerId``, ``QuotaAmount``, ``StartDate``); ``period`` from
  the ``Type`` of its ``Period`` (Month, Quarter, Year; learnt with :meth:`learn_periods`),
  monthly when unknown (the Collaborative Forecasts default).

Salesforce date fields (``CloseDate``, ``ActivityDate``, ...) carry no time: they become noon UTC
of that date, which falls on the same calendar date in every time zone from UTC-11 to UTC+11, so
month and quarter windows cut in the deployment's zone put them on the right day.

``version`` is ``SystemModstamp`` in epoch ms. Fields crm-pulse writes are never read into
canonical fields, so our own writes give the same canonical state (loop safety).

Records come as JSON from the REST API (typed values) or as text from Outbound Messages
(``"true"``, ``"1200.0"``); both are accepted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from ...errors import ConfigError, ConfigProblem, DataError
from ...metrics.events import Event
from ..canonical import CANONICAL_FIELDS, FieldType
from .objects import OBJECTS, SURVEY_DEFAULTS, ObjectSpec
from .settings import SalesforceMapping
from .values import _decimal, _domain, _flag, format_soql_time, to_iso, to_ms

__all__ = [
    "MODSTAMP",
    "OBJECTS",
    "ObjectSpec",
    "SalesforceMapper",
    "format_soql_time",
    "to_iso",
    "to_ms",
]

MODSTAMP = "SystemModstamp"


_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _check_names(mapping: SalesforceMapping, overrides: Mapping[str, Any]) -> None:
    """Every name from the deployment file goes into SOQL: it must be an API name."""
    names: list[tuple[str, str | None]] = [
        ("mapping.survey_object", mapping.survey_object),
        ("mapping.deal_type.property", mapping.deal_type.property),
        ("mapping.activity_type.property", mapping.activity_type.property),
        ("mapping.survey_type.property", mapping.survey_type.property),
    ]
    for obj, fields in overrides.items():
        names.extend((f"mapping.fields.{obj}.{k}", v) for k, v in (fields or {}).items())
    problems = [
        ConfigProblem(path=path, message=f"{value!r} is not a Salesforce API name")
        for path, value in names
        if value is not None and not _NAME.match(value)
    ]
    if problems:
        raise ConfigError(problems)


class SalesforceMapper:
    """Turns Salesforce records into canonical events for one deployment's mapping."""

    def __init__(
        self,
        mapping: SalesforceMapping,
        source: str,
        *,
        objects: Sequence[str] = (),
        forecasting_quotas: bool = False,
    ) -> None:
        self.mapping = mapping
        self.source = source
        self.specs: dict[str, ObjectSpec] = {}
        overrides = mapping.fields.model_dump()
        _check_names(mapping, overrides)
        wanted = list(objects)
        if mapping.survey_object:
            wanted.append(mapping.survey_object)
        if forecasting_quotas:
            wanted.append("ForecastingQuota")
        for sobject in wanted:
            if sobject == mapping.survey_object:
                spec = ObjectSpec(sobject, "survey_response", fields=dict(SURVEY_DEFAULTS))
            else:
                spec = OBJECTS[sobject]
            merged = dict(spec.fields)
            merged.update(overrides.get(spec.canonical) or {})
            self.specs[sobject] = ObjectSpec(
                spec.sobject, spec.canonical, merged, spec.constant, spec.extra
            )
        self._overridden = {obj: set(v or {}) for obj, v in overrides.items()}
        self.periods: dict[str, str] = {}
        """Period Id -> month / quarter / year (from the Period object)."""
        self.own_user: str | None = None
        """The API user crm-pulse writes as: its changes are no one's adoption, and leaving
        them out keeps our write-backs' echoes free of canonical changes (loop safety)."""

    def learn_own_user(self, user_id: str) -> None:
        """Remember the session's user (``chatter/users/me``)."""
        self.own_user = user_id

    def learn_periods(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Remember the kind of each fiscal Period (``SELECT Id, Type FROM Period``)."""
        kinds = {"month": "month", "quarter": "quarter", "year": "year"}
        for row in rows:
            kind = kinds.get(str(row.get("Type") or "").lower())
            if kind is not None and row.get("Id"):
                self.periods[str(row["Id"])] = kind

    @property
    def sobjects(self) -> list[str]:
        return list(self.specs)

    def soql_fields(self, sobject: str) -> list[str]:
        """Every field to SELECT for an sObject (Id and SystemModstamp first)."""
        spec = self.specs[sobject]
        names = [*spec.fields.values(), *spec.extra]
        m = self.mapping
        if sobject == "Opportunity":
            names.append(m.deal_type.property)
        elif sobject == "Task":
            names.append(m.activity_type.property)
        elif spec.canonical == "survey_response":
            names.append(m.survey_type.property)
        rest = sorted({n for n in names if n not in ("Id", MODSTAMP)})
        return ["Id", MODSTAMP, *rest]

    def version(self, sobject: str, record: Mapping[str, Any]) -> int:
        ms = to_ms(record.get(MODSTAMP))
        if ms is None:
            raise DataError(f"no {MODSTAMP}", where=f"Salesforce {sobject} {record.get('Id')}")
        return ms

    def canonical(self, sobject: str) -> str:
        return self.specs[sobject].canonical

    def delete(self, sobject: str, record: Mapping[str, Any]) -> Event:
        return Event(
            source=self.source,
            object=self.specs[sobject].canonical,
            id=str(record.get("Id")),
            op="delete",
            version=self.version(sobject, record),
        )

    def event(self, sobject: str, record: Mapping[str, Any]) -> Event:
        """The canonical upsert for one record."""
        rid = record.get("Id")
        where = f"Salesforce {sobject} {rid}"
        if not rid:
            raise DataError("record has no Id", where=f"Salesforce {sobject}")
        spec = self.specs.get(sobject)
        if spec is None:
            raise DataError(f"sObject {sobject} is not read by this connector", where=where)
        try:
            version = self.version(sobject, record)
            schema = CANONICAL_FIELDS[spec.canonical]
            fields: dict[str, Any] = dict(spec.constant)
            for name, sf_field in spec.fields.items():
                value = record.get(sf_field)
                kind = schema.get(name)
                if kind is FieldType.TIME:
                    fields[name] = to_iso(value)
                elif kind is FieldType.AMOUNT or kind is FieldType.NUMBER:
                    fields[name] = _decimal(value)
                elif name == "domain":
                    fields[name] = _domain(value)
                elif value == "":
                    fields[name] = None
                else:
                    fields[name] = value
            self._derive(sobject, spec, record, fields)
            if self.own_user and fields.get("modified_by") == self.own_user:
                fields["modified_by"] = fields["modified_at"] = None  # our write-back
            if spec.canonical == "survey_response" and fields.get("survey") is None:
                # mapping.survey_type.default null: a response of another kind is not counted
                return Event(
                    source=self.source,
                    object=spec.canonical,
                    id=str(rid),
                    op="delete",
                    version=version,
                )
            return Event(
                source=self.source,
                object=spec.canonical,
                id=str(rid),
                op="upsert",
                version=version,
                fields=fields,
            )
        except DataError as exc:
            raise DataError(exc.reason, where=where) from None
        except ValidationError as exc:  # the Event refused a value: say which and why
            reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise DataError(reasons, where=where) from None
        except ValueError as exc:
            raise DataError(str(exc).splitlines()[0], where=where) from None

    def _derive(
        self, sobject: str, spec: ObjectSpec, record: Mapping[str, Any], fields: dict[str, Any]
    ) -> None:
        m = self.mapping
        mine = self._overridden.get(spec.canonical, set())
        if sobject == "Opportunity":
            if "status" not in mine:
                closed = _flag(record.get("IsClosed"))
                won = _flag(record.get("IsWon"))
                fields["status"] = ("won" if won else "lost") if closed else "open"
            if fields.get("status") == "open" and "closed_at" not in mine:
                fields["closed_at"] = None
            if "stage_entered_at" not in mine:
                fields["stage_entered_at"] = to_iso(
                    record.get("LastStageChangeDate") or record.get("CreatedDate")
                )
            if "type" not in mine:
                raw = record.get(m.deal_type.property)
                dt = m.deal_type
                fields["type"] = dt.values.get(str(raw), dt.default) if raw else dt.default
        elif sobject == "Case":
            if "status" not in mine:
                fields["status"] = "closed" if _flag(record.get("IsClosed")) else "open"
            if fields.get("status") == "open" and "closed_at" not in mine:
                fields["closed_at"] = None
        elif sobject == "Lead":
            if not _flag(record.get("IsConverted")):
                if "converted_at" not in mine:
                    fields["converted_at"] = None
            elif "email" not in mine:
                fields["email"] = None  # the Contact it became carries the e-mail
        elif sobject == "Task":
            if fields.get("occurred_at") is None:
                fields["occurred_at"] = to_iso(record.get("CreatedDate"))
            if "type" not in mine:
                raw = record.get(m.activity_type.property)
                at = m.activity_type
                fields["type"] = at.values.get(str(raw), at.default) if raw else at.default
        elif sobject == "User" and "deactivated_at" not in mine:
            # no deactivation date in Salesforce: an inactive user's last change stands for it
            active = _flag(record.get("IsActive"))
            fields["deactivated_at"] = None if active else to_iso(record.get(MODSTAMP))
        elif sobject == "ForecastingQuota" and "period" not in mine:
            fields["period"] = self.periods.get(str(record.get("PeriodId")), "month")
        elif sobject == "Event":
            if fields.get("occurred_at") is None and "occurred_at" not in mine:
                fields["occurred_at"] = to_iso(record.get("ActivityDate"))  # all-day events
        elif spec.canonical == "survey_response" and "survey" not in mine:
            raw = record.get(m.survey_type.property)
            st = m.survey_type
            fields["survey"] = st.values.get(str(raw), st.default) if raw else st.default
