"""The ``file`` connector: canonical events in from a JSONL file, field writes out to another.

For trying a deployment without touching a CRM, for importing an export of another system, and
for tests. The source follows ``input`` (a JSONL file of canonical events that may grow, like a
log; the cursor is the byte offset after the last complete line). The sink appends each write
to ``path`` as one line ``{"object", "record_id", "field", "value"}``; the last line of a field
holds its current value (:func:`read_values`). Settings::

    - file:
        name: out
        input: ./events.jsonl     # optional: canonical events to read
        path: ./writes.jsonl      # where field writes go (relative to the working directory)
        max_batch: 100
        poll_interval: 1s         # how often input is read
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ...config.connectors import ConnectorSettings
from ...errors import DataError
from ...metrics.events import Event
from ..canonical import event_from_json
from ..protocols import BadRecord, Connector, Cursor, FieldKey, FieldWrite, Page, WriteResult
from .settings import FileSettings

__all__ = ["FileConnector", "FileReader", "FileSettings", "FileSink", "FileSource", "read_values"]


class FileSink:
    rounds_in_flight = 1  # one append after the other

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


class FileSource:
    """Reads complete lines of a JSONL file from a byte offset; a line that is not a canonical
    event is a :class:`BadRecord` naming the file and line (skipped and quarantined with the
    page; the lines after it go on)."""

    def __init__(self, path: Path, page_size: int = 1000) -> None:
        self.path = path
        self.page_size = page_size

    def _read(self, offset: int, line_no: int) -> tuple[list[Event], list[BadRecord], int, int]:
        events: list[Event] = []
        bad: list[BadRecord] = []
        if not self.path.exists():
            return events, bad, offset, line_no
        with self.path.open("rb") as f:
            f.seek(offset)
            while len(events) < self.page_size:
                raw = f.readline()
                if not raw.endswith(b"\n"):
                    break  # an incomplete last line: read it when it is complete
                line_no += 1
                offset += len(raw)
                text = raw.decode("utf-8").strip()
                if not text:
                    continue
                try:
                    events.append(event_from_json(text, line_no))
                except DataError as exc:
                    bad.append(
                        BadRecord("event", _id_of(text), exc.reason, f"{self.path}:{line_no}")
                    )
        return events, bad, offset, line_no

    async def _pages(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        offset = int((cursor or {}).get("offset", 0))
        line_no = int((cursor or {}).get("line", 0))
        while True:
            events, bad, offset, line_no = await asyncio.to_thread(self._read, offset, line_no)
            if not events and not bad:
                return
            yield Page(events, {"offset": offset, "line": line_no}, skipped=bad)

    def backfill(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._pages(cursor)

    def poll(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._pages(cursor)


def _id_of(line: str) -> str:
    """The ``id`` of a line that is JSON but not a valid event ('' otherwise)."""
    try:
        data = json.loads(line)
    except ValueError:
        return ""
    rid = data.get("id") if isinstance(data, dict) else None
    return str(rid) if isinstance(rid, str | int) and not isinstance(rid, bool) else ""


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


class FileReader:
    """The value each field got last in the file (what a CRM would hold)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def read(self, fields: Sequence[FieldKey]) -> dict[FieldKey, float | int | str | None]:
        values = await asyncio.to_thread(read_values, self.path)
        return {f: values[f] for f in fields if f in values}


class FileConnector(Connector):
    kind: ClassVar[str] = "file"
    settings_model: ClassVar[type[ConnectorSettings]] = FileSettings

    def __init__(self, name: str, settings: Any) -> None:
        super().__init__(name, settings)
        if not isinstance(settings, FileSettings):
            settings = FileSettings.model_validate(settings)
        self.settings = settings
        self.sink = FileSink(Path(settings.path), settings.max_batch)
        self.reader = FileReader(Path(settings.path))
        if settings.input is not None:
            self.source = FileSource(Path(settings.input))
        self.poll_interval = settings.poll_interval
