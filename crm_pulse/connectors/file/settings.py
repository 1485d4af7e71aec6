"""Settings of a file connector (``- file: {...}`` in the deployment file)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from ...config.connectors import ConnectorSettings
from ...config.durations import Duration

__all__ = ["FileSettings"]


class FileSettings(ConnectorSettings):
    """Canonical events in from a JSONL file, field writes out to another (``- file: {...}``)."""

    KIND: ClassVar[str] = "file"

    path: str = Field(
        min_length=1,
        description="JSONL file the field writes are appended to (relative to the working "
        "directory).",
    )
    input: str | None = Field(
        default=None, min_length=1, description="JSONL file of canonical events to read."
    )
    max_batch: int = Field(default=100, ge=1, description="Writes per call.")
    poll_interval: Annotated[Duration, Field(gt=0)] = Field(
        default=1.0, description="How often ``input`` is read for new lines."
    )
