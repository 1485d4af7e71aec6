"""``crm-pulse check --config FILE``: validate a deployment file and say what it sets up.

Prints ``OK: FILE: ...`` and a short summary and returns 0, or prints every problem, one per
line as ``FILE:LINE: path: message``, and returns 2. Never a traceback, never a secret: messages
are built from key and variable names, and resolved values are scrubbed from them.
"""

from __future__ import annotations

from typing import TextIO

from ..errors import ConfigError, ConfigProblem
from .loader import load_config

__all__ = ["run_check"]


def run_check(path: str, out: TextIO) -> int:
    """Check the deployment file at ``path``; write the result to ``out``; return 0 or 2."""
    try:
        deployment = load_config(path)
        catalog = deployment.catalog()
        summary = deployment.summary()
    except ConfigError as exc:
        for problem in exc.problems:
            out.write(f"{_with_file(problem, path)}\n")
        return 2
    except Exception as exc:  # a bug of ours: say so, without the message (it may hold values)
        out.write(
            f"{path}: internal error while checking ({type(exc).__name__}); please report it\n"
        )
        return 2
    if not deployment.connectors:
        where = ConfigProblem(
            "connectors",
            "no connector: a deployment reads from at least one CRM "
            "or ingress (crm-pulse init writes one)",
            path,
            1,
        )
        out.write(f"{where}\n")
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


def _with_file(problem: ConfigProblem, path: str) -> ConfigProblem | str:
    if problem.file:
        return problem
    return ConfigProblem(problem.path, problem.message, path, problem.line)
