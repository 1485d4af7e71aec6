"""``crm-pulse check --config FILE``: validate a deployment file and say what it sets up.

Validates the file (every connector's section by the settings model its connector class
declares, built-in or plugin alike), then builds every connector, as ``run`` would, so that
checks a connector makes when it is built are reported too -- all without a network call.
Prints ``OK: FILE: ...`` and a short summary and returns 0, or prints every problem, one per
line as ``FILE:LINE: path: message``, and returns 2. Never a traceback, never a secret: messages
are built from key and variable names, and resolved values are scrubbed from them.
"""

from __future__ import annotations

import asyncio
from typing import TextIO

from ..errors import ConfigError, ConfigProblem
from ._paths import Path as KeyPath
from ._paths import format_path, parse_path
from .deployment import Deployment
from .loader import load_config
from .yamlfile import parse_yaml

__all__ = ["run_check"]


def run_check(path: str, out: TextIO) -> int:
    """Check the deployment file at ``path``; write the result to ``out``; return 0 or 2."""
    try:
        deployment = load_config(path)
        catalog = deployment.catalog()
        summary = deployment.summary()
        problems = _build_connectors(deployment, path)
        if problems:
            raise ConfigError(problems)
    except ConfigError as exc:
        for problem in exc.problems:
            out.write(f"{_with_file(problem, path)}\n")
        return 2
    except Exception as exc:  # a bug of ours: say so, without the message (it may hold values)
        out.write(
            f"{path}: internal error while checking ({type(exc).__name__}); please report it\n"
        )
        return 2
    rules = len(deployment.writeback)
    out.write(
        f"OK: {path}: {len(deployment.connectors)} connector"
        f"{'s' if len(deployment.connectors) != 1 else ''}, {len(catalog.metrics)} metrics "
        f"enabled, {rules} write-back rule{'s' if rules != 1 else ''}\n"
    )
    for line in summary:
        out.write(f"  {line}\n")
    return 0


def _build_connectors(deployment: Deployment, path: str) -> list[ConfigProblem]:
    """Build every connector (no network: clients connect on first use) and close it again;
    what a constructor refuses becomes a problem at its place in the file."""
    # imported here: the connectors import the configuration models
    from ..connectors.registry import build_connector

    with open(path, encoding="utf-8") as fh:
        doc = parse_yaml(fh.read(), path)
    problems: list[ConfigProblem] = []
    for i, entry in enumerate(deployment.connectors):
        here: KeyPath = ("connectors", i, entry.kind)
        try:
            connector = build_connector(entry.kind, entry.name, entry.settings)
        except ConfigError as exc:
            for p in exc.problems:
                where = (*here, *parse_path(p.path))
                problems.append(
                    ConfigProblem(format_path(where), p.message, path, doc.line_of(where))
                )
            continue
        except Exception as exc:  # a plugin's bug: say where, not the message (it may hold values)
            message = f"the {entry.kind} connector could not be built ({type(exc).__name__})"
            problems.append(ConfigProblem(format_path(here), message, path, doc.line_of(here)))
            continue
        asyncio.run(connector.aclose())
    return problems


def _with_file(problem: ConfigProblem, path: str) -> ConfigProblem | str:
    if problem.file:
        return problem
    return ConfigProblem(problem.path, problem.message, path, problem.line)
