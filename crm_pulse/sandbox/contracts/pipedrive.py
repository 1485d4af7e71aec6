"""Pipedrive answers against JSON Schemas generated from Pipedrive's OpenAPI description.

``pipedrive_schemas.json`` is written by ``scripts/pipedrive_schemas.py`` (source, version,
commit and licence are recorded in it). Error answers (4xx/5xx) are checked against the
documented error body: ``success: false`` and an ``error`` message.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

__all__ = ["problems", "schemas"]

_ERROR = {
    "type": "object",
    "required": ["success", "error"],
    "properties": {"success": {"const": False}, "error": {"type": "string"}},
}


@functools.cache
def schemas() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("pipedrive_schemas.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


@functools.cache
def _routes() -> list[tuple[str, re.Pattern[str], str]]:
    out = []
    for route, ref in schemas()["operations"].items():
        method, path = route.split(" ", 1)
        pattern = re.escape(path).replace(r"\{id\}", r"[^/]+")
        out.append((method, re.compile(f"^{pattern}$"), ref))
    # fixed paths (/deals/archived) before patterns (/deals/{id})
    out.sort(key=lambda r: "{id}" in r[1].pattern or r"[^/]+" in r[1].pattern)
    return out


def _leaves(error: Any) -> list[Any]:
    """The errors that say what is wrong: below ``anyOf`` (an optional property may be null),
    the alternatives other than ``null``."""
    if error.validator != "anyOf" or not error.context:
        return [error]
    inner = [
        e for e in error.context if not (e.validator == "type" and e.validator_value == "null")
    ]
    return [leaf for e in inner for leaf in _leaves(e)] or [error]


def _validate(schema: dict[str, Any], data: Any) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft7Validator({**schema, "definitions": schemas()["definitions"]})
    return [
        f"{'/'.join(str(p) for p in leaf.absolute_path) or '(body)'}: {leaf.message[:200]}"
        for error in validator.iter_errors(data)
        for leaf in _leaves(error)
    ]


def problems(method: str, path: str, status: int, body: bytes, ctype: str) -> list[str]:
    if "json" not in ctype:
        return [f"Pipedrive answers JSON, got {ctype or 'no content type'}"] if body else []
    try:
        data = json.loads(body)
    except ValueError:
        return ["the body is not JSON"]
    if status >= 400:
        return _validate(_ERROR, data)
    for m, pattern, ref in _routes():
        if m == method and pattern.match(path):
            return _validate({"$ref": ref}, data)
    return [f"no Pipedrive schema known for {method} {path}"]
