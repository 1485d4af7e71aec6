"""The tie rule: an event's fields as canonical JSON, and which event supersedes a record state
(metrics-spec section 6)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import msgspec

_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
).encode
_FAST_CANONICAL = msgspec.json.Encoder(order="sorted").encode
_PLAIN = frozenset((str, int, bool, type(None)))
"""Values msgspec writes byte for byte as the standard library does (floats differ: ``1e+16``
against ``1e16``; nested values are left to the standard library too)."""


def canonical_json(fields: Mapping[str, Any]) -> str:
    """``fields`` as canonical JSON: sorted keys, no spaces, non-ASCII kept as is.

    The text is the standard library's (``json``, ``sort_keys``, compact separators,
    ``ensure_ascii=False``): it orders upserts of equal versions, so it must never change. The
    usual fields (text, integers, booleans, nulls) are written by msgspec, three times as fast
    and the same bytes (``tests/test_decode.py`` compares both on generated fields)."""
    if type(fields) is dict:
        plain = _PLAIN
        for value in fields.values():
            if type(value) not in plain:
                return _CANONICAL(fields)
        try:
            return _FAST_CANONICAL(fields).decode()
        except (TypeError, ValueError, OverflowError):  # a lone surrogate, a huge integer
            pass
    return _CANONICAL(fields)


def supersedes(
    version: int,
    op: str,
    tie: str | None,
    old_version: int | None,
    old_deleted: bool,
    old_tie: str | None,
) -> bool:
    """Whether an event (``version``, ``op``, ``tie`` = its canonical fields, None for a delete)
    replaces a record state (``old_version`` None: nothing known yet).

    A greater version wins. At equal versions a delete wins over an upsert, and between two
    upserts the one whose fields serialise greater as canonical JSON wins; so the final state
    never depends on the order in which the events arrive (metrics-spec section 6).
    """
    if old_version is None or version > old_version:
        return True
    if version < old_version or old_deleted:
        return False
    if op == "delete":
        return True
    return old_tie is None or (tie is not None and tie > old_tie)
