"""How a place in the deployment file is spelled: ``connectors[1].hubspot.poll_interval``.

A path is a tuple of mapping keys (str) and list indexes (int). Keys that are not plain names
are quoted: ``mapping.deal_type.values["Existing Customer - Upgrade"]``.
"""

from __future__ import annotations

import json
import re

__all__ = ["Path", "format_path", "parse_path"]

Path = tuple[str | int, ...]

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_TOKEN = re.compile(r'\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]|\.?([^.\[\]]+)')


def format_path(path: Path) -> str:
    """``("connectors", 1, "hubspot")`` -> ``connectors[1].hubspot``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def parse_path(text: str) -> Path:
    """The inverse of :func:`format_path` (also reads ``a.0.b`` as written by pydantic helpers)."""
    parts: list[str | int] = []
    for match in _TOKEN.finditer(text):
        index, quoted, plain = match.groups()
        if index is not None:
            parts.append(int(index))
        elif quoted is not None:
            parts.append(json.loads(f'"{quoted}"'))
        elif plain is not None:
            parts.append(int(plain) if plain.isdigit() else plain)
    return tuple(parts)
