"""The fast event decoder accepts exactly what ``Event.model_validate`` accepts, and builds
equal events; where it is unsure it steps aside (None) and pydantic decides and words errors."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from crm_pulse.metrics.decode import trusted_event
from crm_pulse.metrics.events import Event
from crm_pulse.metrics.jsonl import parse_line


def validated(data: Any) -> Event | None:
    try:
        return Event.model_validate(data)
    except ValidationError:
        return None


def same(data: Any) -> None:
    fast = trusted_event(data)
    slow = validated(data)
    if fast is not None:
        assert slow is not None, data
        assert fast == slow and fast.values == slow.values, data
        assert fast.model_fields_set == slow.model_fields_set
        assert fast.canonical == slow.canonical and fast.key == slow.key


DEAL = {
    "source": "crm",
    "object": "deal",
    "id": "7",
    "op": "upsert",
    "version": 3,
    "fields": {
        "status": "won",
        "amount": "120.50",
        "owner_id": "u1",
        "closed_at": "2026-03-05T10:00:00Z",
        "created_at": "2026-01-05T10:00:00Z",
        "note": {"nested": [1, 2.5, None, True]},
    },
}


def test_the_usual_events_take_the_fast_path_and_equal_the_validated_ones() -> None:
    delete = {k: v for k, v in DEAL.items() if k != "fields"} | {"op": "delete"}
    for data in (DEAL, delete, {**DEAL, "object": "custom_thing"}, {**DEAL, "fields": {}}):
        assert trusted_event(data) is not None
        same(data)


def test_unusual_or_bad_input_steps_aside_and_pydantic_words_the_error() -> None:
    bad: list[Any] = [
        [],
        "x",
        {**DEAL, "id": 7},  # an integer id: pydantic makes it text
        {**DEAL, "version": "3"},
        {**DEAL, "version": True},
        {**DEAL, "version": 2**63},
        {**DEAL, "op": "merge"},
        {**DEAL, "op": ["upsert"]},
        {**DEAL, "source": ""},
        {**DEAL, "source": "s" * 101},
        {**DEAL, "id": "é"},
        {**DEAL, "fields": None},
        {**DEAL, "fields": []},
        {**DEAL, "fields": {**DEAL["fields"], "amount": "lots"}},  # type: ignore[dict-item]
        {**DEAL, "fields": {**DEAL["fields"], "closed_at": "yesterday"}},  # type: ignore[dict-item]
        {**DEAL, "fields": {"x" * 101: 1}},
        {k: v for k, v in DEAL.items() if k != "version"},
        {**DEAL, "unknown": 1},  # accepted (and ignored) by validation
    ]
    for data in bad:
        assert trusted_event(data) is None, data
        same(data)
    line = json.dumps({**DEAL, "fields": {"amount": "lots"}})
    try:
        parse_line(line, 4)
    except Exception as exc:
        assert "line 4" in str(exc) and "amount" in str(exc)
    else:
        raise AssertionError("a bad amount was accepted")


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["won", "lost", "open", "2026-03-05T10:00:00Z", "2026-03-05", "12.5"]),
)
field_names = st.sampled_from(
    ["status", "amount", "owner_id", "closed_at", "created_at", "stage", "x", "é"]
)


@settings(max_examples=400, deadline=None)
@given(
    source=st.one_of(st.sampled_from(["crm", "hubspot", ""]), st.text(max_size=3), st.integers()),
    obj=st.sampled_from(["deal", "account", "activity", "quota", "thing", ""]),
    rid=st.one_of(st.text(max_size=5), st.integers(), st.none()),
    op=st.one_of(st.sampled_from(["upsert", "delete"]), scalars),
    version=st.one_of(st.integers(min_value=-(2**64), max_value=2**64), scalars),
    fields=st.one_of(st.dictionaries(field_names, scalars, max_size=6), scalars),
    drop=st.sets(st.sampled_from(["source", "object", "id", "op", "version", "fields"])),
)
def test_any_input_gets_the_answer_validation_gives(
    source: Any, obj: Any, rid: Any, op: Any, version: Any, fields: Any, drop: set[str]
) -> None:
    data = {"source": source, "object": obj, "id": rid, "op": op, "version": version}
    data["fields"] = fields
    for key in drop:
        data.pop(key)
    same(data)
    same(json.loads(json.dumps(data)))


def test_odd_lines_give_the_event_or_the_error_validation_gives() -> None:
    """NaN, integers beyond 64 bits, lone surrogates, duplicate keys: through the fast decoder,
    the same event or the same error as through pydantic alone."""
    import re

    from crm_pulse.errors import DataError

    base = json.dumps({**DEAL, "fields": {"amount": "1"}})
    lines = [
        base,
        base.replace('"amount": "1"', '"amount": NaN'),
        base.replace('"version": 3', '"version": 123456789012345678901234567890'),
        base.replace('"version": 3', '"version": 3.0'),
        base.replace('"owner"', '"x"').replace('"amount": "1"', '"note": "\\ud800"'),
        base.replace('"amount": "1"', '"amount": "1", "amount": "2"'),
        base.replace('"id": "7"', '"id": "7", "id": "8"'),
        "[1, 2]",
        "{not json",
    ]
    for i, text in enumerate(lines, start=1):
        try:
            data = json.loads(text)
            want: Any = Event.model_validate(data) if isinstance(data, dict) else "error"
        except (ValueError, ValidationError):
            want = "error"
        try:
            got: Any = parse_line(text, i)
        except DataError as exc:
            got = "error"
            assert re.search(rf"line {i}\b", str(exc)), exc
        assert got == want, text
