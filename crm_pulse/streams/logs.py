"""Structured logging: JSON lines or text, with registered secret values redacted.

``configure_logging("info", "json")`` installs one handler on the root logger writing one JSON
object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, every ``extra=``
field, and ``exc`` with the traceback. The runtime calls :func:`register_secrets` with the
deployment once it is loaded; every SecretStr value found in it is then replaced by
``**********`` wherever it would appear in a log line (message, extra fields, traceback), and
in ``/status``. Secrets are never meant to be logged: this is the safety net.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any, Literal

from pydantic import BaseModel, SecretStr

__all__ = [
    "MASK",
    "JsonFormatter",
    "RedactingFilter",
    "TextFormatter",
    "configure_logging",
    "redact",
    "redact_data",
    "register_secret",
    "register_secrets",
]

MASK = "**********"
_MIN_LENGTH = 4  # shorter values would mangle ordinary text; such secrets are weak anyway

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class _Secrets:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        variants = {value, json.dumps(value)[1:-1]}
        with self._lock:
            new = {v for v in variants if len(v) >= _MIN_LENGTH} - self._values
            if new:
                self._values |= new
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def redact(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(MASK, text) if pattern is not None else text


_SECRETS = _Secrets()


def register_secret(value: str | SecretStr | None) -> None:
    """Redact ``value`` from logs and ``/status`` from now on."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value:
        _SECRETS.add(value)


def register_secrets(obj: Any) -> int:
    """Register every SecretStr inside ``obj`` (a pydantic model, mapping or list); the count."""
    seen: set[int] = set()
    found = 0

    def walk(node: Any) -> None:
        nonlocal found
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, SecretStr):
            register_secret(node)
            found += 1
        elif isinstance(node, BaseModel):
            for name in type(node).model_fields:
                walk(getattr(node, name, None))
            for value in (node.__pydantic_extra__ or {}).values():
                walk(value)
        elif isinstance(node, Mapping):
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple, set, frozenset)):
            for value in node:
                walk(value)

    walk(obj)
    return found


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``**********``."""
    return _SECRETS.redact(text)


def redact_data(data: Any) -> Any:
    """A JSON-like value with every string redacted (keys included)."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, Mapping):
        return {redact(str(k)): redact_data(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(v) for v in data]
    return data


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class RedactingFilter(logging.Filter):
    """Redacts the message, its arguments, extra fields and the traceback of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.exc_info = None if record.exc_text else record.exc_info
        for key, value in _extras(record).items():
            if isinstance(value, str):
                setattr(record, key, redact(value))
            elif isinstance(value, (Mapping, list, tuple)):
                setattr(record, key, redact_data(value))
        return True


def _time(record: logging.LogRecord) -> str:
    return (
        datetime.fromtimestamp(record.created, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            out.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        return redact(json.dumps(out, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` for people."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v!r}" for k, v in _extras(record).items())
        line = f"{_time(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line += " " + extras
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        return redact(line)


_HANDLER_NAME = "crm-pulse"


def configure_logging(
    level: str | int = "info",
    format: Literal["json", "text"] = "json",
    *,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Install (or replace) crm-pulse's handler on the root logger; returns it."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
