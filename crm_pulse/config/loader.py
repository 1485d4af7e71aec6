"""Read a deployment file: YAML -> references resolved -> validated :class:`Deployment`.

Every problem is reported at once, each as a :class:`~crm_pulse.errors.ConfigProblem` with its
path in the file (``connectors[1].hubspot.poll_interval``), the file and the line. Lines come
from the YAML node tree (``yaml.SafeLoader`` composes it, then the same loader builds the data),
so a pydantic error's location can be looked up exactly; a location that does not exist in the
file (a missing key) gets the line of its nearest parent.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import ErrorDetails

from ..errors import ConfigError, ConfigProblem
from ._paths import Path as KeyPath
from ._paths import format_path, parse_path
from .connectors import ConnectorEntry, settings_model
from .deployment import Deployment
from .secrets import EnvValue, Resolution, resolve_references, scrub
from .yamlfile import YamlDocument, parse_yaml

__all__ = ["load_config", "load_config_text", "parse_yaml"]


def load_config(
    path: str | os.PathLike[str],
    *,
    resolve_secrets: bool = True,
    env: Mapping[str, str] | None = None,
) -> Deployment:
    """Load and validate a deployment file; raise ConfigError listing every problem.

    ``env`` defaults to ``os.environ``. With ``resolve_secrets=False`` a variable that is not set
    is not an error: its references stay unresolved and values that depend on them are not
    checked (for commands such as ``replay`` that only need the metrics section); variables that
    are set are resolved as always.
    """
    file = os.fspath(path)
    try:
        with open(file, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem("", "not a UTF-8 text file", file)]) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError([ConfigProblem("", f"cannot read the file: {reason}", file)]) from None
    return load_config_text(
        text,
        file=file,
        base_dir=Path(file).absolute().parent,
        resolve_secrets=resolve_secrets,
        env=env,
    )


def load_config_text(
    text: str,
    *,
    file: str = "<config>",
    base_dir: str | os.PathLike[str] | None = None,
    resolve_secrets: bool = True,
    env: Mapping[str, str] | None = None,
) -> Deployment:
    """Like :func:`load_config`, from the file's text (``file`` names it in problems)."""
    doc = parse_yaml(text, file)
    if doc.problems:
        raise ConfigError(doc.problems)
    if not isinstance(doc.data, dict):
        got = "an empty file" if doc.data is None else f"a {type(doc.data).__name__}"
        raise ConfigError(
            [
                ConfigProblem(
                    "",
                    "expected a mapping with the keys timezone, connectors, metrics, writeback "
                    f"and runtime, got {got}",
                    file,
                    1,
                )
            ]
        )
    resolution = resolve_references(
        doc.data, os.environ if env is None else env, resolve=resolve_secrets
    )
    found: list[tuple[KeyPath, str]] = []
    for missing in resolution.missing:
        found.append((missing.path, f"environment variable {missing.variable} is not set"))
    found += resolution.malformed
    context = {"from_file": True, "base_dir": base_dir}
    deployment: Deployment | None = None
    try:
        deployment = Deployment.model_validate(resolution.data, context=context)
    except ValidationError as exc:
        every = _errors(exc.errors(), resolution.data)
        errors = _drop_unresolved(every, resolution)
        if errors or found:
            found += errors
            found += _partial_checks(resolution.data, errors, context, file)
        else:  # only values that wait for the environment failed (resolve_secrets=False)
            deployment = _unchecked(resolution.data, every, context)
            if deployment is None:
                found += every
    if deployment is not None:
        deployment._source_file = file
        problems = _drop_unresolved(
            [(parse_path(p.path), p.message) for p in deployment.check_references()], resolution
        )
        found += problems
    if found:
        raise ConfigError(_located(found, doc, file, resolution))
    assert deployment is not None
    return deployment


def _unchecked(
    data: dict[str, Any], errors: list[tuple[KeyPath, str]], context: dict[str, Any]
) -> Deployment | None:
    """With ``resolve_secrets=False``: keep connector entries whose settings can only be checked
    with the environment, unchecked (built with ``model_construct``), so that the rest of the
    deployment (metrics, runtime) can still be used."""
    if any(p[:1] != ("connectors",) or len(p) < 2 for p, _ in errors):
        return None
    connectors = list(data.get("connectors") or [])
    for index in {p[1] for p, _ in errors}:
        raw = connectors[int(index)] if isinstance(index, int) else None
        if not (isinstance(raw, dict) and len(raw) == 1):
            return None
        ((kind, settings),) = raw.items()
        try:
            model = settings_model(str(kind))
        except ConfigError:
            return None
        if not isinstance(settings, dict):
            return None
        values = {"name": kind, **settings}
        for key, value in values.items():
            info = model.model_fields.get(str(key))
            if isinstance(value, EnvValue) and info is not None and "SecretStr" in str(info):
                values[key] = SecretStr(str(value))
        built: dict[str, Any] = {str(kind): model.model_construct(**values)}
        connectors[int(index)] = ConnectorEntry.model_construct(**built)
    try:
        return Deployment.model_validate({**data, "connectors": connectors}, context=context)
    except ValidationError:
        return None


def _partial_checks(
    data: dict[str, Any], errors: list[tuple[KeyPath, str]], context: dict[str, Any], file: str
) -> list[tuple[KeyPath, str]]:
    """The checks across sections, run on what is valid on its own (whole sections, and the
    valid items of the connector and write-back lists), so that one broken place does not hide
    the problems of the others."""
    failed = {p[0] for p, _ in errors if p}
    bad_items = {(p[0], p[1]) for p, _ in errors if len(p) > 1 and isinstance(p[1], int)}
    partial: dict[str, Any] = {}
    renumber: dict[str, list[int]] = {}
    for key, value in data.items():
        if key not in Deployment.model_fields:
            continue
        if key in ("connectors", "writeback") and isinstance(value, list):
            keep = [i for i in range(len(value)) if (key, i) not in bad_items]
            if len(keep) + sum(1 for k, _ in bad_items if k == key) != len(value):
                continue  # the list failed as a whole
            partial[key] = [value[i] for i in keep]
            renumber[key] = keep
        elif key not in failed:
            partial[key] = value
    try:
        deployment = Deployment.model_validate(partial, context=context)
    except ValidationError:
        return []
    deployment._source_file = file
    found = []
    for problem in deployment.check_references():
        path = parse_path(problem.path)
        if path and path[0] in renumber and len(path) > 1 and isinstance(path[1], int):
            path = (path[0], renumber[str(path[0])][path[1]], *path[2:])
        if path[:1] == ("writeback",):
            what = path[-1] if path[-2:-1] == ("target",) or len(path) == 3 else ""
            if "connectors" in failed and what in ("connector", "target"):
                continue
            if "metrics" in failed and what in ("metric", "group", "window"):
                continue
        found.append((path, problem.message))
    return found


# ------------------------------------------------------------------ pydantic errors -> problems


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


# ------------------------------------------------------------------ finishing


def _drop_unresolved(
    found: list[tuple[KeyPath, str]], resolution: Resolution
) -> list[tuple[KeyPath, str]]:
    """Problems inside values that hold unresolved references say nothing: their value is not
    known (missing variables are reported on their own)."""
    if not resolution.unresolved_paths:
        return found
    return [
        (path, message)
        for path, message in found
        if not any(path[: len(u)] == u for u in resolution.unresolved_paths)
    ]


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
