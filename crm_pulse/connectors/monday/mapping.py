"""monday items -> canonical events, driven by the deployment file.

Each configured board holds one kind of record (Deals -> deal, Accounts -> account, Contacts ->
contact, an activities board -> activity). Columns are named by title; :class:`BoardColumns`
finds their ids per board (``boards { columns { id title type } }``) and caches them, reading
again after ``max_age`` or, at most every ``refresh_after`` seconds, for a title it does not know
(a column ``crm-pulse provision`` created in another process).

Values are read from each column's raw JSON ``value`` by column type: status -> its label
(``text``) and ``changed_at``; numbers -> a number; people -> the first person's id; date ->
``date`` + ``time`` (UTC); board_relation -> the first linked item id; email -> the address.
Deals: the stage label gives the status through ``stages.won`` / ``stages.lost``; ``closed_at``
is the close-date column if the board has one, else the time the stage column last changed
(when the deal is won or lost); ``stage_entered_at`` is that same change time. The version of
every event is the item's ``updated_at`` in milliseconds. Columns crm-pulse writes are never
read into canonical fields (loop safety): only the mapped columns are read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Unpack

from .. import (
    CANONICAL_FIELDS,
    DataError,
    Event,
    FieldCache,
    RefreshPolicy,
    delete,
    iso_time,
    time_ms,
    upsert,
)
from .client import MondayClient
from .settings import DEFAULT_COLUMNS, BoardKind, MondayBoard, MondaySettings

__all__ = ["CANONICAL", "DELETE_TIE", "BoardColumns", "MondayMapper", "to_iso", "to_ms"]

CANONICAL: dict[BoardKind, str] = {
    "deals": "deal",
    "accounts": "account",
    "contacts": "contact",
    "activities": "activity",
}
KIND_OF_OBJECT: dict[str, BoardKind] = {v: k for k, v in CANONICAL.items()}

DELETE_TIE = 1
"""Added to a delete's version: a delete in the same millisecond as the item's last change
must still win over it."""

_TIMES = frozenset(
    {"closed_at", "stage_entered_at", "created_at", "customer_since", "churned_at", "occurred_at"}
)


def to_ms(value: Any) -> int | None:
    """A vendor time -> epoch ms (the kit's :func:`time_ms`; monday's API times are UTC)."""
    return time_ms(value)


def to_iso(value: Any) -> str | None:
    return iso_time(time_ms(value))


class BoardColumns(FieldCache[MondayClient]):
    """Column titles -> ids (and types), per board, cached with the kit's refresh policy
    (:class:`FieldCache`)."""

    def __init__(self, client: MondayClient, **policy: Unpack[RefreshPolicy]) -> None:
        super().__init__(client, **policy)
        self.by_title: dict[str, dict[str, str]] = {}
        self.types: dict[str, dict[str, str]] = {}

    async def read(self, board: str, *, retry: bool) -> None:
        """``retry`` is not used: the monday client always retries its column reads."""
        titles: dict[str, str] = {}
        types: dict[str, str] = {}
        for column in await self.client.columns(board):
            cid, title = str(column.get("id")), str(column.get("title"))
            titles.setdefault(title.casefold(), cid)
            types[cid] = str(column.get("type"))
        self.by_title[board] = titles
        self.types[board] = types

    def find(self, board: str, title: str) -> str | None:
        return self.id(board, title)

    def id(self, board: str, title: str) -> str | None:
        return self.by_title.get(board, {}).get(title.casefold())


def _raw(column: Mapping[str, Any]) -> Any:
    value = column.get("value")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def read_column(column: Mapping[str, Any]) -> Any:
    """The canonical reading of one column value (None when empty)."""
    kind = str(column.get("type") or "")
    raw = _raw(column)
    text = column.get("text")
    if raw in (None, "", {}):
        return None
    if kind == "numbers":
        number = raw if not isinstance(raw, dict) else raw.get("number")
        return None if number in (None, "") else str(number)
    if kind in ("people", "person", "multiple-person"):
        people = (raw.get("personsAndTeams") or []) if isinstance(raw, dict) else []
        first = next((p for p in people if isinstance(p, dict) and p.get("kind") != "team"), None)
        return None if first is None else str(first.get("id"))
    if kind == "date":
        if not isinstance(raw, dict) or not raw.get("date"):
            return None
        return f"{raw['date']}T{raw.get('time') or '00:00:00'}Z"
    if kind == "board_relation":
        linked = (raw.get("linkedPulseIds") or []) if isinstance(raw, dict) else []
        first = next((p for p in linked if isinstance(p, dict)), None)
        return None if first is None else str(first.get("linkedPulseId"))
    if kind == "email":
        return raw.get("email") if isinstance(raw, dict) else str(raw)
    if kind in ("status", "color", "dropdown"):
        return text or None
    if isinstance(raw, dict):
        return text or None
    return str(raw)


def changed_at(column: Mapping[str, Any] | None) -> str | None:
    """When a status (or people, date) column last changed, from its raw ``changed_at``."""
    if column is None:
        return None
    raw = _raw(column)
    return str(raw["changed_at"]) if isinstance(raw, dict) and raw.get("changed_at") else None


class MondayMapper:
    def __init__(self, settings: MondaySettings, source: str, columns: BoardColumns) -> None:
        self.settings = settings
        self.source = source
        self.columns = columns
        self.boards: dict[BoardKind, MondayBoard] = dict(settings.boards.configured())
        self.kind_of_board = {b.id: k for k, b in self.boards.items()}
        self.won = {s.casefold() for s in settings.stages.won}
        self.lost = {s.casefold() for s in settings.stages.lost}

    def titles(self, kind: BoardKind) -> dict[str, list[str]]:
        """Canonical field -> column titles to look for on the board (configured first)."""
        board = self.boards[kind]
        out = {name: list(titles) for name, titles in DEFAULT_COLUMNS[kind].items()}
        if kind == "activities":
            out["type"] = [self.settings.activity_type.property]
        if kind == "contacts" and self.settings.lifecycle is not None:
            out["lifecycle"] = [self.settings.lifecycle.property]
        if kind == "deals" and self.settings.deal_type is not None:
            out["type"] = [self.settings.deal_type.property]
        for name, title in board.columns.items():
            out[name] = [title]
        return out

    def column_ids(self, kind: BoardKind) -> dict[str, str]:
        """Canonical field -> column id on the board (fields whose column is absent left out);
        the board's columns must be loaded."""
        board = self.boards[kind].id
        out: dict[str, str] = {}
        for name, titles in self.titles(kind).items():
            for title in titles:
                cid = self.columns.id(board, title)
                if cid is not None:
                    out[name] = cid
                    break
        return out

    @staticmethod
    def version(item: Mapping[str, Any]) -> int:
        ms = to_ms(item.get("updated_at")) or to_ms(item.get("created_at"))
        if ms is None:
            raise DataError("no updated_at", where=f"monday item {item.get('id')}")
        return ms

    def delete(self, kind: BoardKind, rid: str, version: int) -> Event:
        return delete(self.source, CANONICAL[kind], rid, version)

    def event(self, kind: BoardKind, item: Mapping[str, Any], version: int | None = None) -> Event:
        rid = str(item.get("id"))
        where = f"monday {kind} item {rid}"
        v = version if version is not None else self.version(item)
        if item.get("state") in ("archived", "deleted"):
            return self.delete(kind, rid, v + DELETE_TIE)
        try:
            by_id = {str(c.get("id")): c for c in item.get("column_values") or []}
            ids = self.column_ids(kind)
            fields: dict[str, Any] = {}
            if "created_at" in CANONICAL_FIELDS[CANONICAL[kind]]:
                fields["created_at"] = to_iso(item.get("created_at"))
            for name, cid in ids.items():
                if name in ("stage", "expected_close"):
                    continue
                value = read_column(by_id[cid]) if cid in by_id else None
                fields[name] = to_iso(value) if name in _TIMES else value
            if kind == "deals":
                self._deal(fields, by_id.get(ids.get("stage", "")))
                deal_type = self.settings.deal_type
                if deal_type is not None:
                    raw = fields.pop("type", None)
                    fields["type"] = (
                        deal_type.values.get(str(raw), deal_type.default)
                        if raw
                        else deal_type.default
                    )
            elif kind == "activities":
                m = self.settings.activity_type
                raw = fields.pop("type", None)
                fields["type"] = m.values.get(str(raw), m.default) if raw else m.default
            elif kind == "contacts" and self.settings.lifecycle is not None:
                life = self.settings.lifecycle
                raw = fields.pop("lifecycle", None)
                fields["lifecycle"] = life.values.get(str(raw), life.default) if raw else None
            return upsert(self.source, CANONICAL[kind], rid, v, fields)
        except DataError as exc:
            raise DataError(exc.reason, where=where) from None
        except (ValueError, TypeError) as exc:
            raise DataError(str(exc).splitlines()[0], where=where) from None

    def _deal(self, fields: dict[str, Any], stage: Mapping[str, Any] | None) -> None:
        label = read_column(stage) if stage is not None else None
        fields["stage"] = label
        folded = str(label).casefold() if label else ""
        status = "won" if folded in self.won else "lost" if folded in self.lost else "open"
        fields["status"] = status
        moved = to_iso(changed_at(stage))
        fields["stage_entered_at"] = moved
        if status == "open":
            fields["closed_at"] = None
        elif not fields.get("closed_at"):
            fields["closed_at"] = moved
