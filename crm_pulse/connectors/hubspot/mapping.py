"""HubSpot records -> canonical events (metrics-spec section 1), driven by the deployment file.

Which HubSpot object becomes which canonical object, and which property holds each canonical
field, is the declarative table :data:`OBJECTS`; ``mapping.fields`` in the deployment file
overrides any entry. Deal status comes from the pipeline stage's metadata (``probability``
1.0 = closed won, 0.0 = closed lost, ``isClosed`` only as a fallback; tickets: ``ticketState``)
unless ``mapping.deal_stages`` / ``mapping.ticket_stages`` say otherwise; the deal type from ``mapping.deal_type``; ``stage_entered_at`` from ``hs_date_entered_<stage>``.

Properties crm-pulse writes are never read into canonical fields, so our own writes produce the
same canonical state (loop safety).

``modified_by`` / ``modified_at`` (who changed a record last, for CRM adoption) come from
``hs_updated_by_user_id`` and the last-modified property. That property holds a *user* id, and
canonical users are owners (the ids records carry in ``hubspot_owner_id``): it is translated
through the owners' ``userId`` / ``userIdIncludingInactive`` (:meth:`HubSpotMapper.learn_owner`).
A change made through the API by a private app (crm-pulse's own write-backs) has no user: both
fields are then null, which keeps the last change a user made (docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ...errors import DataError
from ...metrics.events import Event
from .. import user_record
from .objects import OBJECT_TYPE_IDS, OBJECTS, ObjectSpec, object_type_of
from .settings import HubSpotMapping
from .values import deal_stage_status, ticket_stage_status, to_iso, to_ms

__all__ = [
    "OBJECTS",
    "OBJECT_TYPE_IDS",
    "HubSpotMapper",
    "ObjectSpec",
    "deal_stage_status",
    "object_type_of",
    "ticket_stage_status",
    "to_iso",
    "to_ms",
]


_CHANGED_BY = "hs_updated_by_user_id"
_CHANGED_OBJECTS = frozenset({"account", "contact", "deal", "ticket", "activity"})
"""Canonical objects whose records say who changed them last."""


_TIME_FIELDS = {
    "modified_at",
    "customer_since",
    "churned_at",
    "created_at",
    "converted_at",
    "stage_entered_at",
    "closed_at",
    "occurred_at",
    "first_response_at",
    "submitted_at",
}


class HubSpotMapper:
    """Turns HubSpot records into canonical events for one deployment's mapping."""

    def __init__(self, mapping: HubSpotMapping, source: str) -> None:
        self.mapping = mapping
        self.source = source
        self.deal_stage_status: dict[str, str] = {}
        self.ticket_stage_status: dict[str, str] = {}
        self.pipelines_learned: set[str] = set()
        """Object types whose pipelines have been read (deals, tickets)."""
        self.owner_of_user: dict[str, str] = {}
        """HubSpot user id -> owner id (canonical user), from the owners read so far."""
        overrides = mapping.fields.model_dump()
        self._changes_mapped = {
            spec.canonical: "modified_by" not in (overrides.get(spec.canonical) or {})
            for spec in OBJECTS.values()
        }
        self.fields: dict[str, dict[str, str]] = {}
        for object_type, spec in OBJECTS.items():
            merged = dict(spec.fields)
            merged.update(overrides.get(spec.canonical) or {})
            self.fields[object_type] = merged

    # ------------------------------------------------------------ pipelines
    def learn_pipelines(self, object_type: str, pipelines: Iterable[Mapping[str, Any]]) -> None:
        """Read the stage flags (closed, won) of every pipeline (replacing what was known)."""
        if object_type == "deals":
            self.deal_stage_status = {}
        else:
            self.ticket_stage_status = {}
        self.pipelines_learned.add(object_type)
        for pipeline in pipelines:
            for stage in pipeline.get("stages", []):
                meta = stage.get("metadata") or {}
                if object_type == "deals":
                    self.deal_stage_status[str(stage["id"])] = deal_stage_status(meta)
                else:
                    self.ticket_stage_status[str(stage["id"])] = ticket_stage_status(meta)

    def unknown_stages(self, object_type: str, records: Iterable[Mapping[str, Any]]) -> set[str]:
        """Stages named by these records that no pipeline read so far has (a new stage)."""
        if object_type == "deals":
            prop, known = "dealstage", self.deal_stage_status
        elif object_type == "tickets":
            prop, known = "hs_pipeline_stage", self.ticket_stage_status
        else:
            return set()
        stages = {str((r.get("properties") or {}).get(prop) or "") for r in records}
        return {s for s in stages if s and s not in known}

    # ------------------------------------------------------------ users
    def learn_owner(self, owner: Mapping[str, Any]) -> None:
        """Remember which owner a user is (``userId``, or ``userIdIncludingInactive`` for a
        deactivated user's owner)."""
        user = owner.get("userIdIncludingInactive") or owner.get("userId")
        if user not in (None, "") and owner.get("id"):
            self.owner_of_user[str(user)] = str(owner["id"])

    def _tracks_changes(self, object_type: str) -> bool:
        canonical = OBJECTS[object_type].canonical
        return canonical in _CHANGED_OBJECTS and self._changes_mapped.get(canonical, True)

    def unknown_users(self, object_type: str, records: Iterable[Mapping[str, Any]]) -> set[str]:
        """User ids that changed these records but belong to no owner read so far."""
        if not self._tracks_changes(object_type):
            return set()
        users = {str((r.get("properties") or {}).get(_CHANGED_BY) or "") for r in records}
        return {u for u in users if u and u not in self.owner_of_user}

    # ------------------------------------------------------------ records
    def properties(self, object_type: str) -> list[str]:
        """The properties to request for an object type."""
        spec = OBJECTS[object_type]
        names = set(self.fields[object_type].values()) | {spec.modified, "hs_object_id"}
        if self._tracks_changes(object_type):
            names.add(_CHANGED_BY)
        m = self.mapping
        if object_type == "deals":
            names.add(m.deal_type.property)
            names.update(f"hs_date_entered_{s}" for s in self.deal_stage_status)
        elif object_type == "contacts":
            names.add(m.lifecycle.property)
        elif object_type == "tickets":
            names.add("hs_pipeline_stage")
        elif object_type == "feedback_submissions":
            names.add(m.survey_type.property)
        return sorted(names)

    def version(self, object_type: str, record: Mapping[str, Any]) -> int:
        props = record.get("properties") or {}
        ms = to_ms(props.get(OBJECTS[object_type].modified)) or to_ms(record.get("updatedAt"))
        if ms is None:
            raise DataError("no last-modified time", where=f"{object_type} {record.get('id')}")
        return ms

    def account_from_associations(self, object_type: str) -> bool:
        """Whether this type's ``account_id`` comes from its company associations (engagements
        carry no company property) rather than from a property."""
        return OBJECTS[object_type].canonical == "activity" and (
            "account_id" not in self.fields[object_type]
        )

    def event(
        self, object_type: str, record: Mapping[str, Any], *, account_id: str | None = None
    ) -> Event:
        """The canonical upsert for one record (a delete if it is outside the mapped scope).
        ``account_id`` is the company found through associations, where that is the source."""
        rid = str(record.get("id"))
        spec = OBJECTS[object_type]
        props: Mapping[str, Any] = record.get("properties") or {}
        version = self.version(object_type, record)
        where = f"HubSpot {object_type} {rid}"
        m = self.mapping
        if (
            object_type == "deals"
            and m.pipelines is not None
            and props.get("pipeline") not in m.pipelines
        ):
            return Event(source=self.source, object="deal", id=rid, op="delete", version=version)
        fields: dict[str, Any] = dict(spec.constant)
        try:
            for name, prop in self.fields[object_type].items():
                value = props.get(prop)
                fields[name] = (
                    to_iso(value)
                    if name in _TIME_FIELDS
                    else (None if value in ("", None) else value)
                )
            if self.account_from_associations(object_type):
                fields["account_id"] = account_id
            if self._tracks_changes(object_type):  # a user's change (an app's is no one's)
                user = props.get(_CHANGED_BY)
                owner = self.owner_of_user.get(str(user)) if user not in (None, "") else None
                fields["modified_by"] = owner
                fields["modified_at"] = to_iso(props.get(spec.modified)) if owner else None
            if object_type == "deals":
                stage = props.get("dealstage")
                status = m.deal_stages.get(str(stage)) or self.deal_stage_status.get(
                    str(stage), "open"
                )
                fields["status"] = status
                fields["stage_entered_at"] = to_iso(props.get(f"hs_date_entered_{stage}"))
                if status == "open":
                    fields["closed_at"] = None
                raw_type = props.get(m.deal_type.property)
                fields["type"] = (
                    m.deal_type.values.get(str(raw_type), m.deal_type.default)
                    if raw_type not in (None, "")
                    else m.deal_type.default
                )
            elif object_type == "contacts":
                raw = props.get(m.lifecycle.property)
                fields["lifecycle"] = (
                    m.lifecycle.values.get(str(raw), m.lifecycle.default)
                    if raw
                    else m.lifecycle.default
                )
            elif object_type == "tickets":
                stage = str(props.get("hs_pipeline_stage"))
                fields["status"] = m.ticket_stages.get(stage) or self.ticket_stage_status.get(
                    stage, "open"
                )
                if fields["status"] == "open":
                    fields["closed_at"] = None
            elif object_type == "feedback_submissions":
                raw = props.get(m.survey_type.property)
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
            raise DataError(exc.reason, where=where) from None
        except ValueError as exc:
            raise DataError(str(exc).splitlines()[0], where=where) from None

    def owner_event(self, owner: Mapping[str, Any]) -> Event | None:
        """A canonical ``user`` for one owner of ``GET /crm/v3/owners`` (None for a queue,
        which owns records but is nobody's seat). ``id`` is the owner id that records carry in
        ``hubspot_owner_id``; the version is ``updatedAt``. HubSpot keeps no deactivation date:
        an archived owner (its user deactivated or removed) is deactivated at its last change,
        and its version is one millisecond after it, so the archived state wins over the active
        one even when archiving left ``updatedAt`` as it was."""
        rid = str(owner.get("id") or "")
        where = f"HubSpot owner {rid}"
        if not rid:
            raise DataError("an owner without an id", where="HubSpot owners")
        if str(owner.get("type") or "PERSON").upper() == "QUEUE":
            return None
        try:
            updated = to_ms(owner.get("updatedAt")) or to_ms(owner.get("createdAt"))
            if updated is None:
                raise DataError("no updatedAt")
            created_at = to_iso(owner.get("createdAt"))
            changed_at = to_iso(updated)
        except DataError as exc:
            raise DataError(exc.reason, where=where) from None
        return user_record(
            self.source,
            rid,
            email=owner.get("email"),
            created_at=created_at,
            changed_ms=updated,
            changed_at=changed_at,
            deactivated=owner.get("archived") is True,
        )

    def delete(self, object_type: str, record: Mapping[str, Any]) -> Event:
        """The delete for an archived record, versioned after its last change."""
        rid = str(record.get("id"))
        archived = to_ms(record.get("archivedAt")) or 0
        props = record.get("properties") or {}
        modified = to_ms(props.get(OBJECTS[object_type].modified)) or to_ms(record.get("updatedAt"))
        ms = max(archived, modified or 0)
        if ms <= 0:
            raise DataError("no archive or last-modified time", where=f"{object_type} {rid}")
        return self.delete_event(object_type, rid, ms)

    def delete_event(self, object_type: str, rid: str, version: int) -> Event:
        return Event(
            source=self.source,
            object=OBJECTS[object_type].canonical,
            id=rid,
            op="delete",
            version=version,
        )
