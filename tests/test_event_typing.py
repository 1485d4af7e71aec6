"""Field typing: a value of the wrong shape is a clear data error, never a crash."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_pulse.errors import DataError
from crm_pulse.metrics import parse_amount, parse_line


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
        "source": "s",  # the record's own source and id, readable in where:
        "id": "1",
    }


@given(
    st.one_of(
        st.integers(-(10**20), 10**20),
        st.decimals(-(10**18), 10**18, allow_nan=False, allow_infinity=False, places=8).map(str),
        st.from_regex(r"-?[0-9]{1,20}(\.[0-9]{0,8})?", fullmatch=True),
    )
)
def test_amount_fast_paths_equal_decimal_rounding(value: int | str) -> None:
    dec = Decimal(value)
    if abs(dec) >= 10**15:  # the bound on amounts (docs/runtime.md)
        with pytest.raises(ValueError, match="out of range"):
            parse_amount(value)
        return
    expected = int((dec * 1_000_000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    assert parse_amount(value) == expected


def test_amount_beyond_decimal_precision_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_amount("9999999999999999999999.99999950")
