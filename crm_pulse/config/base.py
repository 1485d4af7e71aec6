"""What every section of the deployment file is built from: the strict base model and small
value types (ids, URLs, paths relative to the file, connector names) shared by the sections and
by the connectors' settings models."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
)

__all__ = [
    "CONFIG_SOURCE",
    "ActivityType",
    "ConfigModel",
    "ConnectorName",
    "DealStatus",
    "DealType",
    "ExistingFile",
    "FilePath",
    "HttpUrl",
    "Id",
    "Lifecycle",
    "PeriodKind",
    "SurveyType",
    "TicketStatus",
    "connector_name",
    "did_you_mean",
]


CONFIG_SOURCE = "config"
"""The ``source`` of events made from the configuration (quotas, spend)."""


class ConfigModel(BaseModel):
    """Base of every section: unknown keys are errors, values are immutable, and a
    ValidationError's text never shows the input (it may hold credentials)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


# ------------------------------------------------------------------ small value types


def _id_text(value: Any) -> Any:
    """Record and owner ids are text; YAML reads ``12345`` as a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Id = Annotated[str, BeforeValidator(_id_text), Field(min_length=1)]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s) URL like https://example.com, got {value!r}")
    return value.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]


def _context(info: ValidationInfo) -> Mapping[str, Any]:
    return info.context if isinstance(info.context, Mapping) else {}


def _relative_to_file(value: Path, info: ValidationInfo) -> Path:
    """A relative path in the file is relative to the file's directory, not the working one."""
    base = _context(info).get("base_dir")
    if base is not None and not value.is_absolute():
        return Path(base) / value
    return value


def _existing_file(value: Path, info: ValidationInfo) -> Path:
    value = _relative_to_file(value, info)
    if _context(info).get("from_file") and not value.is_file():
        raise ValueError(f"no such file: {value}")
    return value


FilePath = Annotated[Path, AfterValidator(_relative_to_file)]
ExistingFile = Annotated[Path, AfterValidator(_existing_file)]


def connector_name(value: str) -> str:
    if (
        not value
        or not (value[0].isascii() and value[0].islower())
        or not all(c.isascii() and (c.islower() or c.isdigit() or c in "_-") for c in value)
    ):
        raise ValueError(
            f"expected a name of lower-case letters, digits, '-' and '_' starting with a letter, "
            f"got {value!r}"
        )
    if len(value) > 63:
        raise ValueError("a connector name has at most 63 characters")
    return value


ConnectorName = Annotated[str, AfterValidator(connector_name)]

PeriodKind = Literal["month", "quarter", "year"]
DealType = Literal["new", "upsell", "renewal", "other"]
Lifecycle = Literal["lead", "qualified", "customer", "other"]
ActivityType = Literal["call", "email", "meeting", "task", "note"]
SurveyType = Literal["nps", "csat"]
DealStatus = Literal["open", "won", "lost"]
TicketStatus = Literal["open", "closed"]


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""
