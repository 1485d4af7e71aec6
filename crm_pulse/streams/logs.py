"""Structured logs: one JSON object per line (or plain text for people), secrets redacted.

Every log call site passes context as ``extra={...}`` (connector, reason, record ids); the JSON
formatter writes those fields next to time, level, logger and message. Messages are built from
names, never credential values; as a second line of defence, :func:`configure_logging` takes
the deployment's secret values and a filter replaces any occurrence with ``***``.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from pydantic import BaseModel, SecretStr

__all__ = ["JsonFormatter", "RedactSecrets", "configure_logging", "secret_values"]

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(
            f"{k}={v}"
            for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_")
        )
        base = f"{record.levelname.lower():<7} {record.name}: {record.getMessage()}"
        return f"{base} {extra}".rstrip()


class RedactSecrets(logging.Filter):
    """Replaces secret values in the message, its arguments and extra fields."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                value = value.replace(secret, "***")
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self._clean(record.getMessage())
            record.args = None
            for key, value in list(record.__dict__.items()):
                if key not in _STANDARD:
                    record.__dict__[key] = self._clean(value)
        return True


def secret_values(model: Any) -> list[str]:
    """Every SecretStr value inside a pydantic model (or mapping/list of them)."""
    found: list[str] = []
    if isinstance(model, SecretStr):
        found.append(model.get_secret_value())
    elif isinstance(model, BaseModel):
        for name in type(model).model_fields:
            found.extend(secret_values(getattr(model, name)))
        extra = model.__pydantic_extra__ or {}
        for value in extra.values():
            found.extend(secret_values(value))
    elif isinstance(model, dict):
        for value in model.values():
            found.extend(secret_values(value))
    elif isinstance(model, list | tuple):
        for value in model:
            found.extend(secret_values(value))
    return found


def configure_logging(
    level: str = "info",
    fmt: str = "json",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send crm_pulse's logs to ``stream`` (stderr) as JSON lines or text."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_crm_pulse", False):
            root.removeHandler(old)
    handler._crm_pulse = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for chatty in ("httpx", "httpcore", "urllib3", "aiokafka"):  # a line per HTTP request
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    return handler
