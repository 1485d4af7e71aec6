"""Where the deployment file is, and the ``.env`` file beside it.

Every command that takes ``--config`` finds the file the same way: the ``--config`` option, then
the ``CRM_PULSE_CONFIG`` environment variable, then ``./crm-pulse.yaml``.

A ``.env`` file beside the deployment file (and one in the working directory) supplies values
for ``${VAR}`` references: ``NAME=value`` lines, ``export NAME=value`` too, ``#`` comments, and
values in single or double quotes. The process environment wins over the file, so a deployment
can keep its secrets in a service manager and still use a ``.env`` for development. Values are
never logged or shown; problems name the file, the line and the variable, never the value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigError, ConfigProblem

__all__ = ["DEFAULT_FILE", "ENV_VAR", "environment_for", "find_config", "read_dotenv"]

ENV_VAR = "CRM_PULSE_CONFIG"
DEFAULT_FILE = "crm-pulse.yaml"

_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")


def find_config(
    explicit: str | None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> str:
    """The deployment file to use, or a ConfigError that says how to name one."""
    if explicit:
        return explicit
    environ = os.environ if env is None else env
    named = environ.get(ENV_VAR, "").strip()
    if named:
        return named
    default = Path(cwd or ".") / DEFAULT_FILE
    if default.is_file():
        return str(default) if cwd else DEFAULT_FILE
    raise ConfigError(
        [
            ConfigProblem(
                "",
                f"no deployment file: pass --config FILE, set {ENV_VAR}, or create "
                f"./{DEFAULT_FILE} (crm-pulse init writes one)",
            )
        ]
    )


def read_dotenv(path: str | os.PathLike[str]) -> dict[str, str]:
    """The variables of a ``.env`` file ({} if there is none); a bad line is a ConfigError
    naming the file and line (never the value)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(
            [ConfigProblem("", f"cannot read the file: {reason}", str(file))]
        ) from None
    out: dict[str, str] = {}
    problems: list[ConfigProblem] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            problems.append(
                ConfigProblem("", "expected NAME=value (or a # comment)", str(file), number)
            )
            continue
        name, value = match.group(1), match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        out[name] = value
    if problems:
        raise ConfigError(problems)
    return out


def environment_for(config: str | os.PathLike[str]) -> dict[str, str]:
    """The variables a deployment file's references resolve from: its ``.env``, the working
    directory's ``.env``, then the process environment (which wins)."""
    merged: dict[str, str] = {}
    here = Path(config).absolute().parent / ".env"
    cwd = Path(".env").absolute()
    if cwd != here:
        merged.update(read_dotenv(cwd))
    merged.update(read_dotenv(here))
    merged.update(os.environ)
    return merged
