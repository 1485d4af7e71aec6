"""A TinyCRM deal -> a canonical ``deal`` event (its custom fields are never read: that is
where crm-pulse writes, so our own writes cannot feed back into the numbers)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crm_pulse.connectors import DataError, Event, delete, upsert

STATUSES = {"open": "open", "won": "won", "lost": "lost"}


def _iso(ms: Any) -> str | None:
    if ms is None:
        return None
    if not isinstance(ms, int):
        raise DataError(f"expected milliseconds, got {ms!r}")
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def deal_event(source: str, record: dict[str, Any]) -> Event:
    """The event for one deal record; DataError if the record cannot be mapped."""
    rid, version = str(record.get("id") or ""), record.get("updated_at")
    if not rid or not isinstance(version, int):
        raise DataError("a deal needs an id and updated_at", where=f"deal {rid}")
    if record.get("deleted"):
        return delete(source, "deal", rid, version)
    status = STATUSES.get(str(record.get("status")))
    if status is None:
        raise DataError(f"unknown status {record.get('status')!r}", where=f"deal {rid}")
    fields = {
        "amount": record.get("amount"),
        "status": status,
        "owner_id": record.get("owner"),
        "account_id": record.get("company"),
        "created_at": _iso(record.get("created_at")),
        "closed_at": _iso(record.get("closed_at")) if status != "open" else None,
    }
    return upsert(source, "deal", rid, version, {k: v for k, v in fields.items() if v is not None})
