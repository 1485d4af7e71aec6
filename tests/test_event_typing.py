"""Field typing: a value of the wrong shape is a clear data error, never a crash."""

from __future__ import annotations

import json

import pytest

from crm_pulse.errors import DataError
from crm_pulse.metrics import parse_line


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"status": ["won"]}, "fields.status: expected one of lost, open, won"),
        ({"status": {"x": 1}}, "fields.status: expected one of lost, open, won"),
        ({"status": "pending"}, "fields.status: expected one of lost, open, won"),
        ({"owner_id": True}, "fields.owner_id: expected a string"),
        ({"closed_at": "yesterday"}, "fields.closed_at: expected an ISO 8601 time"),
    ],
)
def test_badly_typed_field_is_a_data_error_naming_the_field(
    fields: dict[str, object], reason: str
) -> None:
    line = {"source": "s", "object": "deal", "id": "1", "op": "upsert", "version": 1}
    with pytest.raises(DataError) as info:
        parse_line(json.dumps({**line, "fields": fields}), 7)
    assert reason in str(info.value)
    assert "line 7" in str(info.value)


def test_typed_values_are_shared_strings_and_integers() -> None:
    line = {"source": "s", "object": "deal", "id": "1", "op": "upsert", "version": 1}
    fields = {
        "status": "won",
        "owner_id": 42,
        "amount": "10.5",
        "closed_at": "2026-01-02T00:00:00Z",
    }
    values = parse_line(json.dumps({**line, "fields": fields}), 1).values
    assert values == {
        "status": "won",
        "owner_id": "42",
        "amount": 10_500_000,
        "closed_at": 1_767_312_000_000,
    }
