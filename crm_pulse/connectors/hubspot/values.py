"""HubSpot values as canonical ones: dates and times (ISO text, epoch ms, dates) to epoch ms and
ISO text, and a pipeline stage's status from its metadata."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ...errors import DataError


def to_ms(value: Any) -> int | None:
    """A HubSpot date/datetime value (ISO text, epoch milliseconds, or a date) -> epoch ms."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if text.isascii() and text.isdigit():
        if len(text) > 14:  # later than the year 5000 in milliseconds
            raise DataError(f"not a date or time in range: {text[:20]!r}")
        return int(text)
    if len(text) == 10:
        text += "T00:00:00Z"
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"not a date or time: {text[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if not 1900 <= parsed.year < 2200:
        raise DataError(f"date or time outside 1900..2200: {text[:40]!r}")
    return int(parsed.timestamp() * 1000)


def to_iso(value: Any) -> str | None:
    ms = to_ms(value)
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    )


def _flag(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    return str(value).strip().lower() == "true"


def deal_stage_status(metadata: Mapping[str, Any]) -> str:
    """open/won/lost of a deal stage from its pipeline metadata.

    HubSpot documents ``probability`` (0.0 to 1.0) as the deal stage's metadata: a closed-won
    stage has 1.0 and a closed-lost stage 0.0. ``isClosed`` (sent by the API, not part of the
    documented input) is only a fallback when no probability is given."""
    raw = metadata.get("probability")
    try:
        probability = float(raw) if raw not in (None, "") else None
    except (TypeError, ValueError):
        probability = None
    closed = _flag(metadata.get("isClosed"))
    if probability is not None:
        if probability >= 1.0:
            return "won" if closed is not False else "open"
        if probability <= 0.0:
            return "lost" if closed is not False else "open"
        return "lost" if closed else "open"
    return "lost" if closed else "open"


def ticket_stage_status(metadata: Mapping[str, Any]) -> str:
    """open/closed of a ticket stage: its ``ticketState`` (OPEN/CLOSED), else ``isClosed``."""
    state = str(metadata.get("ticketState") or "").upper()
    if state in ("OPEN", "CLOSED"):
        return state.lower()
    return "closed" if _flag(metadata.get("isClosed")) else "open"
