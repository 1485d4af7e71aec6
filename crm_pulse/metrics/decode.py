"""A fast path from a decoded JSON object to an :class:`~.events.Event`.

``Event.model_validate`` costs about 10 µs an event, most of it pydantic's generic machinery
around checks that, for the usual event, are a handful of comparisons. :func:`trusted_event`
makes those comparisons itself and builds the event directly; anything it is not sure about
(an integer id, a non-ASCII name, a version given as a string, a missing key, ...) returns None
and the caller validates with pydantic, which gives the same event or the precise error. So
both paths accept exactly the same inputs and build equal events (``tests/test_decode.py``
checks this on generated and hostile inputs).

Every reader of an event's JSON text goes through here: :func:`decode_event` stands for
``Event.model_validate_json`` (the event log read back, demo checks) and :func:`decode_json`
for ``json.loads`` followed by :func:`trusted_event` (JSONL lines: ``crm-pulse replay``, the
file source). The text is decoded by msgspec (about 1 µs a line against 3.5 for ``json.loads``
and 13 for pydantic's whole validation); whatever it or :func:`trusted_event` is unsure about
goes the former way, so the events and the errors are the same (property tests in
``tests/test_decode.py`` on generated and hostile texts).
"""

from __future__ import annotations

from typing import Any

import msgspec

from .events import (
    BUILTIN_OBJECTS,
    ID_FIELD,
    MAX_ID,
    MAX_NAME,
    MAX_VERSION,
    SOURCE_FIELD,
    Event,
    canonical_json,
    check_fields,
    type_fields,
)

__all__ = ["Parts", "build_event", "decode_event", "decode_json", "trusted_event", "trusted_parts"]

_KEYS = frozenset(("source", "object", "id", "op", "version", "fields"))
_OPS = {"upsert": "upsert", "delete": "delete"}
_new = object.__new__
_set = object.__setattr__
# the private attributes an Event is built with, at their defaults; the decoder fills the ones
# validation fills (the typed values, and the canonical JSON where the model keeps it)
_PRIVATE = {name: attr.get_default() for name, attr in Event.__private_attributes__.items()}
_KEEPS_CANONICAL = "_canonical" in _PRIVATE


Parts = tuple[str, str, str, str, int, dict[str, Any], dict[str, Any]]
"""(source, object, id, op, version, fields, typed values): an event before it is built."""


def trusted_event(data: Any) -> Event | None:
    """The event ``data`` (a decoded JSON object) validates to, or None when only the full
    validation can tell (the caller then runs ``Event.model_validate``)."""
    parts = trusted_parts(data)
    return None if parts is None else build_event(parts, data)


def trusted_parts(data: Any) -> Parts | None:
    """What :func:`trusted_event` builds its event from, after the same checks (None: only
    the full validation can tell). A reader that needs no :class:`Event` object (the bulk
    replay, :mod:`.bulk`) stops here."""
    if type(data) is not dict or not _KEYS.issuperset(data):
        return None
    source = data.get("source")
    obj: Any = data.get("object")
    rid = data.get("id")
    op_text = data.get("op")
    op = _OPS.get(op_text) if type(op_text) is str else None
    version = data.get("version")
    if (
        op is None
        or type(version) is not int
        or not -MAX_VERSION < version < MAX_VERSION
        or type(source) is not str
        or type(obj) is not str
        or type(rid) is not str
        or not (0 < len(source) <= MAX_NAME and 0 < len(obj) <= MAX_NAME)
        or not 0 < len(rid) <= MAX_ID
        or not (source.isascii() and obj.isascii() and rid.isascii())
    ):
        return None
    fields = data.get("fields")
    if fields is None:
        if "fields" in data:
            return None  # null fields: a validation error, worded by pydantic
        fields = {}
    elif type(fields) is not dict:
        return None
    try:
        check_fields(fields)
        if op == "upsert":
            values = type_fields(BUILTIN_OBJECTS.get(obj), fields)
            values.setdefault(SOURCE_FIELD, source)
            values.setdefault(ID_FIELD, rid)
        else:
            values = {}
    except ValueError:
        return None  # the full validation words the error
    return (source, obj, rid, op, version, fields, values)


def build_event(parts: Parts, data: dict[str, Any]) -> Event:
    """The event of :func:`trusted_parts`' ``parts``, read from ``data``."""
    source, obj, rid, op, version, fields, values = parts
    event: Event = _new(Event)
    _set(
        event,
        "__dict__",
        {
            "source": source,
            "object": obj,
            "id": rid,
            "op": op,
            "version": version,
            "fields": fields,
        },
    )
    _set(event, "__pydantic_fields_set__", set(data))
    _set(event, "__pydantic_extra__", None)
    private = {**_PRIVATE, "_values": values}
    if _KEEPS_CANONICAL and op == "upsert":
        private["_canonical"] = canonical_json(fields)
    _set(event, "__pydantic_private__", private)
    return event


_DECODE = msgspec.json.Decoder().decode
_NOT_DECODED = object()


def decode_json(text: str | bytes | bytearray) -> Any:
    """``text`` decoded as JSON by msgspec, or a sentinel (never a JSON value) when msgspec
    refuses it: the caller then reads it the former way, with that reader's error messages.

    Where both accept a text they give equal values (msgspec refuses ``NaN``, lone surrogates
    and numbers beyond a double, which ``json.loads`` reads and validation then refuses)."""
    try:
        return _DECODE(text)
    except (msgspec.DecodeError, ValueError, RecursionError):
        return _NOT_DECODED


def decode_event(text: str | bytes | bytearray) -> Event:
    """``Event.model_validate_json(text)``, faster: the same event, or the same
    ``ValidationError`` (raised by that very call, which reads every text the fast path is
    unsure about)."""
    event = trusted_event(decode_json(text))
    if event is not None:
        return event
    return Event.model_validate_json(text)
