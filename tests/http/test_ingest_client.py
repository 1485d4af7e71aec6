"""The benchmark's load client works against the server (correctness only, nothing timed)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from crm_pulse.connectors.events import EventsReceiver
from crm_pulse.streams.http import HttpServer, MemoryInbox, Status, build_app
from crm_pulse.streams.telemetry import Telemetry

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "ingest_client.py"
_spec = importlib.util.spec_from_file_location("ingest_client", _PATH)
assert _spec is not None and _spec.loader is not None
ingest_client = importlib.util.module_from_spec(_spec)
sys.modules["ingest_client"] = ingest_client  # dataclasses look their module up
_spec.loader.exec_module(ingest_client)


async def test_client_delivers_every_event_signed() -> None:
    inbox = MemoryInbox()
    receiver = EventsReceiver("client-secret")
    server = HttpServer(build_app([("events", receiver)], inbox, lambda: Status(True), Telemetry()))
    await server.start("127.0.0.1", 0)
    try:
        result = await ingest_client.run_ingest(
            f"{server.url}/events", "client-secret", connections=4, batch=7, requests=30
        )
        bad = await ingest_client.run_ingest(
            f"{server.url}/events", "wrong", connections=2, batch=1, requests=3
        )
    finally:
        await server.stop()
    assert result.requests == 30 and result.events == 210 and result.errors == 0
    assert dict(result.statuses) == {202: 30} and len(result.latencies) == 30
    ids = [e["id"] for _, r in inbox.items for e in json.loads(r.body)]
    assert sorted(ids) == sorted(f"d{i}" for i in range(210))
    events = [e for _, r in inbox.items for e in await receiver.parse(r)]
    assert len(events) == 210
    assert dict(bad.statuses) == {401: 3} and bad.events == 0
