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


# ------------------------------------------------ from JSON text: decode_event and parse_line


def _former_parse_line(text: str, line: int) -> Event:
    """parse_line as it was before msgspec decoded the lines: json.loads, then validation."""
    from crm_pulse.errors import DataError
    from crm_pulse.metrics.jsonl import _json_loads, _reason
    from crm_pulse.safejson import MAX_DEPTH, depth_of

    if text.count("[") + text.count("{") > MAX_DEPTH and depth_of(text.encode()) > MAX_DEPTH:
        raise DataError(f"JSON nested deeper than {MAX_DEPTH} levels", f"line {line}")
    data = _json_loads(text, line)
    if not isinstance(data, dict):
        raise DataError(f"expected a JSON object, got {type(data).__name__}", f"line {line}")
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        raise DataError(_reason(exc), f"line {line}") from None


def _outcome(parse: Any, text: Any) -> Any:
    from crm_pulse.errors import DataError

    try:
        event = parse(text)
    except ValidationError as exc:
        return ("ValidationError", json.dumps(exc.errors(include_url=False), default=repr))
    except DataError as exc:
        return ("DataError", str(exc))
    return (
        event,
        event.values,
        event.canonical,
        event.key,
        event.model_fields_set,
        event.model_dump_json(),
    )


def _texts(data: Any) -> st.SearchStrategy[str]:
    """The JSON text of ``data`` and hostile variants of it."""
    text = json.dumps(data)
    compact = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    cut = st.integers(min_value=0, max_value=max(len(text) - 1, 0)).map(lambda i: text[:i])
    edits = st.sampled_from(
        [
            (": 3", ": 3.0"),
            (": 3", ": NaN"),
            (": 3", ": 1e400"),
            (": 3", ": 123456789012345678901234567890"),
            ('"won"', '"w\\u00f6n"'),
            ('"won"', '"\\ud800"'),
            ('"id": ', '"id": "x", "id": '),
            ('"fields": {', '"fields": {"status": "lost", '),
            ('{"', ' {\n"'),
            ("}", "} x"),
            ("}", "}\n"),
            ('"upsert"', '"UPSERT"'),
        ]
    ).map(lambda e: text.replace(*e))
    return st.one_of(st.just(text), st.just(compact), cut, edits)


events_data = st.fixed_dictionaries(
    {
        "source": st.one_of(st.sampled_from(["crm", "hubspot", "crmé"]), st.text(max_size=3)),
        "object": st.sampled_from(["deal", "account", "activity", "quota", "thing", ""]),
        "id": st.one_of(st.text(max_size=5), st.integers(), st.sampled_from(["7", "x y"])),
        "op": st.one_of(st.sampled_from(["upsert", "delete"]), scalars),
        "version": st.one_of(st.integers(min_value=-(2**64), max_value=2**64), st.just(3)),
        "fields": st.one_of(
            st.dictionaries(
                field_names,
                st.one_of(
                    scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(), scalars)
                ),
                max_size=6,
            ),
            st.just({"status": "won", "amount": "12.50", "closed_at": "2026-03-05T10:00:00Z"}),
            scalars,
        ),
    }
)


@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_decode_event_gives_what_model_validate_json_gives(data: st.DataObject) -> None:
    """Same event (fields, typed values, tie text, fields set) or the same ValidationError, for
    texts and bytes of events, broken events and arbitrary text."""
    from crm_pulse.metrics.decode import decode_event

    text = data.draw(st.one_of(events_data.flatmap(_texts), st.text(max_size=40)))
    for form in (text, text.encode("utf-8", "surrogatepass")):
        assert _outcome(decode_event, form) == _outcome(Event.model_validate_json, form), form


@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_parse_line_gives_what_the_former_reading_gives(data: st.DataObject) -> None:
    """A JSONL line: same event or the same error message (line number included)."""
    text = data.draw(st.one_of(events_data.flatmap(_texts), st.text(max_size=40)))
    if not text.strip():
        return
    assert _outcome(lambda t: parse_line(t, 9), text) == _outcome(
        lambda t: _former_parse_line(t, 9), text
    ), text


def test_bytes_that_are_not_utf8_give_pydantic_s_error() -> None:
    from crm_pulse.metrics.decode import decode_event

    good = json.dumps(DEAL)
    for raw in (
        good.encode().replace(b"won", b"w\xffn"),
        b"\xef\xbb\xbf" + good.encode(),
        good.encode("utf-16"),
        bytearray(good.encode()),
    ):
        assert _outcome(decode_event, raw) == _outcome(Event.model_validate_json, raw)


def test_the_usual_texts_do_not_reach_pydantic(monkeypatch: Any) -> None:
    from crm_pulse.metrics.decode import decode_event

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the fast path stepped aside")

    want = Event.model_validate(DEAL)
    monkeypatch.setattr(Event, "model_validate_json", refuse)
    monkeypatch.setattr(Event, "model_validate", refuse)
    line = json.dumps(DEAL)
    for got in (decode_event(line), decode_event(line.encode()), parse_line(line, 1)):
        assert got == want and got.values == want.values and got.canonical == want.canonical


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**31), max_value=10**31),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(),
        st.sampled_from(["\x00\x1f\x7f\u2028\U0001f600", '"\\/\b\f\n\r\t', "\ud800"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=1000, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=8))
def test_canonical_json_is_the_standard_library_s_text(fields: dict[str, Any]) -> None:
    """The tie-breaker text of two upserts never changes: byte for byte ``json.dumps`` with
    sorted keys, compact separators and non-ASCII kept (msgspec writes the usual fields)."""
    from crm_pulse.metrics.events import canonical_json

    want = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(fields) == want
