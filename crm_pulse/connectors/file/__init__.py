"""The ``file`` connector: a sink that appends field writes to a JSONL file.

For trying a deployment without touching a CRM, for exporting values to another system, and for
tests: each write is one line ``{"object", "record_id", "field", "value"}``; the last line of a
field holds its current value (:func:`read_values`). Settings::

    - file:
        name: out
        path: ./writes.jsonl      # relative to the working directory
        max_batch: 100
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from ...errors import ConfigError, ConfigProblem
from ..protocols import Connector, FieldWrite, WriteResult

__all__ = ["FileConnector", "FileSink", "read_values"]


class FileSink:
    def __init__(self, path: Path, max_batch: int) -> None:
        self.path = path
        self.max_batch = max_batch
        self.calls = 0

    def _append(self, writes: Sequence[FieldWrite]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            for w in writes:
                line = {"object": w.object, "record_id": w.record_id, "field": w.field}
                f.write(json.dumps({**line, "value": w.value}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    async def write(self, writes: Sequence[FieldWrite]) -> list[WriteResult]:
        self.calls += 1
        await asyncio.to_thread(self._append, writes)
        return [WriteResult(w, ok=True) for w in writes]


def read_values(path: str | Path) -> dict[tuple[str, str, str], Any]:
    """(object, record_id, field) -> the last value written to the file."""
    out: dict[tuple[str, str, str], Any] = {}
    p = Path(path)
    if not p.exists():
        return out
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out[(row["object"], row["record_id"], row["field"])] = row["value"]
    return out


class FileConnector(Connector):
    kind: ClassVar[str] = "file"

    def __init__(self, name: str, settings: Any) -> None:
        super().__init__(name, settings)
        path = settings.get("path") if isinstance(settings, dict) else None
        if not isinstance(path, str) or not path:
            raise ConfigError(
                [ConfigProblem(f"connectors.{name}.path", "a file connector needs a path")]
            )
        max_batch = settings.get("max_batch", 100)
        if not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigError(
                [ConfigProblem(f"connectors.{name}.max_batch", "expected a positive integer")]
            )
        self.sink = FileSink(Path(path), max_batch)
