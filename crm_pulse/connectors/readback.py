"""What a :class:`~crm_pulse.connectors.protocols.FieldReader` returns for a field's raw value.

``crm-pulse audit`` compares a field's value in the CRM with what crm-pulse wrote; vendors give
it back as text (HubSpot properties), JSON numbers (Zoho, Pipedrive) or a monetary object
(``{"value": 10, "currency": "EUR"}``). :func:`held_value` turns each into the one form the
comparison reads: a number, None when empty, or the CRM's text when it is not a number.
"""

from __future__ import annotations

from typing import Any

__all__ = ["held_value"]


def held_value(raw: Any) -> float | int | str | None:
    """A read-back field value as a number (None when empty, the text when not a number)."""
    if isinstance(raw, dict):  # a monetary field: {"value": 10, "currency": "EUR"}
        raw = raw.get("value")
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        return str(raw)
    if isinstance(raw, int | float):
        return raw
    try:
        number = float(raw)
    except (TypeError, ValueError):
        return str(raw)
    return int(number) if number.is_integer() else number
