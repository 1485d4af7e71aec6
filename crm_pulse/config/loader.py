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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from ..errors import ConfigError, ConfigProblem
from ._paths import Path as KeyPath
from ._paths import parse_path
from .connectors import ConnectorEntry, settings_model
from .deployment import Deployment
from .problems import _errors, _located
from .secrets import EnvValue, Resolution, resolve_references
from .yamlfile import parse_yaml

__all__ = ["load_config", "load_config_text", "parse_yaml"]


def load_config(
    path: str | os.PathLike[str],
    *,
    resolve_secrets: bool = True,
    env: Mapping[str, str] | None = None,
) -> Deployment:
    """Load and validate a deployment file; raise ConfigError listing every problem.

    ``env`` defaults to ``os.environ`` over the ``.env`` files (:mod:`.discovery`). With
    ``resolve_secrets=False`` a variable that is not set is not an error: its references stay
    unresolved and values that depend on them are not checked (for commands such as ``replay``
    that only need the metrics section); variables that are set are resolved as always.
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
    if env is None:
        from .discovery import environment_for

        env = environment_for(file)  # the .env beside the file, then the environment
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
    found = _metrics_of_failed_rules(data, bad_items, deployment)
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


def _metrics_of_failed_rules(
    data: dict[str, Any], bad_items: set[tuple[Any, Any]], deployment: Deployment
) -> list[tuple[KeyPath, str]]:
    """An unknown metric in a write-back rule that failed for another reason (a bad window,
    say): reported with it, not after the window is fixed."""
    rules = data.get("writeback")
    if not isinstance(rules, list):
        return []
    try:
        known = set(deployment.catalog().metrics)
    except ConfigError:
        return []
    found: list[tuple[KeyPath, str]] = []
    for kind, i in sorted(bad_items, key=lambda k: (str(k[0]), k[1])):
        if kind != "writeback" or not isinstance(rules[i], dict):
            continue
        metric = rules[i].get("metric")
        if isinstance(metric, str) and metric and metric not in known:
            hint = difflib.get_close_matches(metric, sorted(known), n=1)
            more = f" (did you mean {hint[0]!r}?)" if hint else ""
            found.append((("writeback", i, "metric"), f"unknown metric {metric!r}{more}"))
    return found


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
