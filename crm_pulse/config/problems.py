"""pydantic's validation errors as problems a person reads: the real path in the file (union
member names left out, of a union's alternatives only the closest), a message that says
what was expected and what keys there are, quoted values clipped (none under a credential's
key), each problem with its line."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from ..errors import ConfigError, ConfigProblem
from ._paths import Path as KeyPath
from ._paths import format_path
from .connectors import ConnectorEntry, settings_model
from .deployment import Deployment
from .secrets import Resolution, scrub
from .yamlfile import YamlDocument


@dataclass
class _Error:
    path: KeyPath
    message: str
    kind: str
    site: KeyPath | None = None  # where a union's alternatives were tried
    branch: str = ""  # which alternative
    expected: str = ""  # what this alternative wanted, in words


def _errors(errors: Iterable[ErrorDetails], data: Any) -> list[tuple[KeyPath, str]]:
    """pydantic's errors as (path, message); of a union's alternatives only the closest one."""
    converted: list[_Error] = []
    for err in errors:
        path, site, branch = _walk_loc(err["loc"], data, err["type"])
        message = _message(err, path)
        if "[key]" in err["loc"]:
            message = f"not a valid key: {message}"
        converted.append(_Error(path, message, err["type"], site, branch, _expected(err)))
    by_site: dict[KeyPath, dict[str, list[_Error]]] = {}
    for e in converted:
        if e.site is not None:
            by_site.setdefault(e.site, {}).setdefault(e.branch, []).append(e)
    dropped: set[int] = set()
    merged: dict[int, tuple[KeyPath, str]] = {}
    for site, branches in by_site.items():
        if len(branches) < 2:
            continue
        ranked = sorted(branches.values(), key=lambda errs: _branch_score(site, errs))
        for errs in ranked[1:]:
            dropped.update(id(e) for e in errs)
        best = ranked[0]
        if _branch_score(site, best)[0] == 0:  # no alternative matched the value's shape
            wanted = list(dict.fromkeys(e.expected for errs in ranked for e in errs))
            got = _kind(_value_at(data, site))
            merged[id(best[0])] = (site, f"expected {' or '.join(wanted)}, got {got}")
            dropped.update(id(e) for e in best[1:])
    out: list[tuple[KeyPath, str]] = []
    for e in converted:
        if id(e) in merged:
            out.append(merged[id(e)])
        elif id(e) not in dropped:
            out.append((e.path, e.message))
    return out


def _branch_score(site: KeyPath, errs: list[_Error]) -> tuple[int, int, int]:
    """Lower is closer: the alternative whose errors lie deepest inside the value matched its
    shape best; then the one with fewer missing or unknown keys; then fewer errors."""
    depth = max(len(e.path) - len(site) for e in errs)
    shape = sum(1 for e in errs if e.kind in ("missing", "extra_forbidden"))
    return (-depth, shape, len(errs))


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "decimal_type": "a number",
    "decimal_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "model_type": "a mapping",
    "dict_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
}


def _expected(err: ErrorDetails) -> str:
    if err["type"] == "literal_error":
        return str((err.get("ctx") or {}).get("expected", "a listed value"))
    return _EXPECTED.get(err["type"], "a valid value")


def _value_at(data: Any, path: KeyPath) -> Any:
    for element in path:
        if isinstance(data, dict):
            data = data.get(_find_key(data, element))
        elif isinstance(data, list) and isinstance(element, int) and element < len(data):
            data = data[element]
        else:
            return None
    return data


def _walk_loc(
    loc: tuple[int | str, ...], data: Any, kind: str
) -> tuple[KeyPath, KeyPath | None, str]:
    """The real path of an error in the data: union member names and ``[key]`` markers that
    pydantic puts in ``loc`` are not keys of the file, so they are left out (and remembered)."""
    cur = data
    out: list[str | int] = []
    site: KeyPath | None = None
    branch = ""
    for i, element in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(cur, dict):
            key = _find_key(cur, element)
            if key is not None:
                out.append(str(key))
                cur = cur[key]
                continue
            if last and kind == "missing":
                out.append(str(element))
                continue
        elif isinstance(cur, list) and isinstance(element, int):
            if 0 <= element < len(cur):
                out.append(element)
                cur = cur[element]
                continue
            if last and kind == "missing":
                out.append(element)
                continue
        if cur is None and last and kind == "missing":  # `key:` with nothing after it
            out.append(element)
            continue
        if site is None and element != "[key]":
            site, branch = tuple(out), str(element)
    return tuple(out), site, branch


def _find_key(mapping: dict[Any, Any], element: int | str) -> Any:
    if element in mapping:
        return element
    for key in mapping:
        if str(key) == str(element):
            return key
    return None


def _message(err: ErrorDetails, path: KeyPath) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "missing":
        if path and isinstance(path[-1], int):
            return "missing: the list is too short"
        return "required, but missing"
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        allowed = _allowed_keys(path[:-1])
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        if close:
            return f"unknown key {key!r} (did you mean {close[0]!r}?)"
        listed = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return f"unknown key {key!r}{listed}"
    if kind in ("literal_error", "enum") and "expected" in ctx:
        return f"expected {ctx['expected']}, got {_show(value)}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping (key: value), got {_kind(value)}"
    if kind in ("list_type", "tuple_type", "set_type"):
        return f"expected a list, got {_kind(value)}"
    return str(err["msg"])


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return _show(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(path: KeyPath) -> list[str]:
    """The keys the model at ``path`` accepts (for "did you mean")."""
    tp: Any = Deployment
    for element in path:
        tp = _unwrap(tp)
        if tp is ConnectorEntry:  # keyed by kind: the kind's settings model
            try:
                tp = settings_model(str(element))
            except ConfigError:
                return []
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            info = tp.model_fields.get(str(element))
            if info is None:
                return []
            tp = info.annotation
        elif get_origin(tp) in (list, tuple):
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
            continue
        if origin is Union or type(tp).__name__ == "UnionType":
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


MAX_QUOTED = 24
"""Longest value quoted in a problem; longer ones are cut (a token pasted into the wrong key
must not end up in a terminal or a CI log)."""
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'" + r'|"(?:[^"\\]|\\.)*"')
_SECRET_KEY = re.compile(r"(?i)token|secret|passw|api_?key|session|credential|private")


def _clip_values(message: str, path: KeyPath) -> str:
    """Quoted values in ``message``: none at all under a key that names a credential, else at
    most :data:`MAX_QUOTED` characters of each."""
    secret = bool(path) and bool(_SECRET_KEY.search(str(path[-1])))

    def clip(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "'${'" or text.startswith(("'${", '"${')):
            return text  # a reference, not a value
        if secret:
            return "(the value is not shown)"
        if len(text) <= MAX_QUOTED + 2:
            return text
        return text[: MAX_QUOTED - 2] + "..." + text[-1]

    return _QUOTED.sub(clip, message)


def _located(
    found: list[tuple[KeyPath, str]], doc: YamlDocument, file: str, resolution: Resolution
) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    seen: set[tuple[KeyPath, str]] = set()
    for path, message in found:
        message = _clip_values(scrub(message, resolution.values), path)
        if (path, message) in seen:
            continue
        seen.add((path, message))
        problems.append(ConfigProblem(format_path(path), message, file, doc.line_of(path)))
    order = {id(p): i for i, p in enumerate(problems)}
    problems.sort(key=lambda p: (p.line if p.line is not None else 1 << 30, order[id(p)]))
    return problems
