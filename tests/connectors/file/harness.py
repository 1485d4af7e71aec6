"""The file connector under the conformance suite: its "simulator" is a JSONL file of canonical
events, and what it writes goes to another file. It has no webhooks, no provisioner and no rate
limits, so those checks are skipped."""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from crm_pulse.connectors.file import FileConnector, FileSettings, read_values
from crm_pulse.sandbox.conformance import Harness


class FileHarness(Harness):
    kind = "file"
    records_per_call = 100
    rate_limits = False

    def __init__(self, folder: Path) -> None:
        self.input = folder / "in.jsonl"
        self.output = folder / "out.jsonl"
        self.input.touch()
        self.connector = FileConnector(
            "file", FileSettings(path=str(self.output), input=str(self.input), max_batch=100)
        )
        self.deals: dict[str, dict[str, Any]] = {}
        self._version = int(time.time() * 1000)

    def _append(self, event: dict[str, Any]) -> None:
        with self.input.open("a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")

    def _upsert(self, deal_id: str, version: int) -> None:
        fields = self.deals[deal_id]
        self._append(
            {
                "source": "file",
                "object": "deal",
                "id": deal_id,
                "op": "upsert",
                "version": version,
                "fields": fields,
            }
        )

    def seed_deals(self, n: int, *, same_modified_at: bool = False) -> list[str]:
        ids = []
        self._version += 1
        for _ in range(n):
            deal_id = f"d{len(self.deals) + 1}"
            self.deals[deal_id] = {"amount": "100", "status": "open", "owner_id": "u1"}
            if not same_modified_at:
                self._version += 1
            self._upsert(deal_id, self._version)
            ids.append(deal_id)
        return ids

    def seed_bad_deal(self) -> str:
        deal_id = f"d{len(self.deals) + 1}"
        self.deals[deal_id] = {"amount": "n/a", "status": "open"}
        self._version += 1
        self._upsert(deal_id, self._version)
        return deal_id

    def touch(self, deal_id: str) -> None:
        self.deals[deal_id]["amount"] = str(float(self.deals[deal_id]["amount"]) + 1)
        self._version += 1
        self._upsert(deal_id, self._version)

    def delete(self, deal_id: str) -> None:
        self._version += 1
        self._append(
            {
                "source": "file",
                "object": "deal",
                "id": deal_id,
                "op": "delete",
                "version": self._version,
            }
        )

    def writeback_target(self, deal_id: str) -> tuple[str, str, str]:
        return ("deal", deal_id, "crm_pulse_score")

    def field_value(self, object: str, record_id: str, field: str) -> Any:
        return read_values(self.output).get((object, record_id, field))

    def write_calls(self) -> int:
        assert self.connector.sink is not None
        return int(self.connector.sink.calls)  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def make_harness() -> AsyncIterator[FileHarness]:
    with tempfile.TemporaryDirectory(prefix="crm-pulse-file-") as folder:
        harness = FileHarness(Path(folder))
        try:
            yield harness
        finally:
            await harness.connector.aclose()
