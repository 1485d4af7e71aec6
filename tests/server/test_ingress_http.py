"""The runtime's HTTP server over real loopback HTTP: signed ingress, refusals, operations."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from crm_pulse.config import load_config_text
from crm_pulse.connectors.events import EventsReceiver, sign
from crm_pulse.connectors.file import read_values
from crm_pulse.connectors.protocols import WebhookRequest
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime
from crm_pulse.streams.http import build_app, serve_runtime
from tests.ports import free_port

SECRET = "s3cr3t-ingress-key-0123456789"


DEPLOY = """
timezone: UTC
connectors:
  - events: {{secret: "${{INGRESS_SECRET}}", sources: [crm, config]}}
  - file: {{name: out, path: "{out}"}}
writeback:
  - {{metric: won_revenue, window: month, group: {{}}, target: {{connector: out, object: Company, record: "c1", field: won_mtd}}}}
runtime:
  state_path: "{state}"
  listen: "127.0.0.1:{port}"
  debounce: 0s
"""


def deal(i: int, version: int = 1, amount: str = "100", **extra: Any) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    return {
        "source": "crm",
        "object": "deal",
        "id": str(i),
        "op": "upsert",
        "version": version,
        "fields": {
            "status": "won",
            "amount": amount,
            "owner_id": "u1",
            "closed_at": now,
            "created_at": now,
        },
        **extra,
    }


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedRuntime, str]]:
    port = free_port()
    text = DEPLOY.format(out=tmp_path / "out.jsonl", state=tmp_path / "s.sqlite", port=port)
    deployment = load_config_text(text, base_dir=tmp_path, env={"INGRESS_SECRET": SECRET})
    runtime = EmbeddedRuntime(deployment)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop, serve=serve_runtime))
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(base + "/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.02)
    yield runtime, base
    stop.set()
    await asyncio.wait_for(task, 30)


async def post(base: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(base + "/events", data=body, headers=headers) as r,
    ):
        return r.status, await r.json()


async def wait_for(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_signed_events_are_acknowledged_applied_and_written(
    running: tuple[EmbeddedRuntime, str], tmp_path: Path
) -> None:
    _runtime, base = running
    body = json.dumps([deal(1), deal(2, amount="250.50")]).encode()
    status, answer = await post(base, body, sign(SECRET, body))
    assert (status, answer) == (200, {"accepted": True})

    async def written() -> bool:
        return read_values(tmp_path / "out.jsonl").get(("Company", "c1", "won_mtd")) == 350.5

    await wait_for(written)
    # JSON lines work too, and a newer version replaces the amount
    body = (json.dumps(deal(1, version=2, amount="10")) + "\n").encode()
    assert (await post(base, body, sign(SECRET, body)))[0] == 200

    async def rewritten() -> bool:
        return read_values(tmp_path / "out.jsonl").get(("Company", "c1", "won_mtd")) == 260.5

    await wait_for(rewritten)


async def test_refusals_say_why_and_store_nothing(running: tuple[EmbeddedRuntime, str]) -> None:
    runtime, base = running
    body = json.dumps([deal(1)]).encode()
    cases: list[tuple[bytes, dict[str, str], int, str]] = [
        (body, {}, 401, "no X-Crm-Pulse-Signature header"),
        (body, {"X-Crm-Pulse-Signature": "garbage"}, 401, "malformed"),
        (body, sign("wrong-secret", body), 401, "signature does not match"),
        (body, sign(SECRET, body, int(time.time()) - 3600), 401, "old"),
        (body, sign(SECRET, body, int(time.time()) + 3600), 401, "in the future"),
        (b'{"x":', sign(SECRET, b'{"x":'), 400, "not JSON"),
    ]
    bad = json.dumps(
        [
            deal(1),
            {"source": "crm", "object": "deal", "op": "upsert", "version": 1},
            deal(3, version="x"),
        ]
    ).encode()
    cases.append((bad, sign(SECRET, bad), 400, "[1]: id: missing"))
    other = json.dumps([deal(1, source="intruder")]).encode()
    cases.append((other, sign(SECRET, other), 401, "intruder not allowed"))
    for payload, headers, code, reason in cases:
        status, answer = await post(base, payload, headers)
        assert status == code, (reason, answer)
        assert reason in answer["reason"], answer
        assert SECRET not in json.dumps(answer)
    status, answer = await post(base, bad, sign(SECRET, bad))
    assert "[2]: version" in answer["reason"]
    assert runtime.inbox.accepted == 0
    # an exact repeat of a stored request is a duplicate: 200, nothing stored again
    headers = sign(SECRET, body)
    assert (await post(base, body, headers))[0] == 200
    status, answer = await post(base, body, headers)
    assert (status, answer.get("duplicate")) == (200, True)
    assert runtime.inbox.accepted == 1


async def test_operations_endpoints_show_numbers_never_secrets(
    running: tuple[EmbeddedRuntime, str], caplog: pytest.LogCaptureFixture
) -> None:
    _runtime, base = running
    body = json.dumps([deal(7)]).encode()
    await post(base, body, sign(SECRET, body))
    await post(base, body, sign("forged", body))
    async with aiohttp.ClientSession() as s:
        async with s.get(base + "/healthz") as r:
            assert (r.status, await r.text()) == (200, "ok\n")

        async def consumed() -> bool:
            async with s.get(base + "/status") as r:
                return bool((await r.json())["consumed_position"] >= 1)

        await wait_for(consumed)
        async with s.get(base + "/status") as r:
            text = await r.text()
            status = json.loads(text)
        async with s.get(base + "/metrics") as r:
            metrics = await r.text()
            assert r.headers["Content-Type"].startswith("text/plain")
    assert set(status) >= {
        "connectors",
        "events_per_second",
        "outbox_depth",
        "dead_letters",
        "last_errors",
        "backlog",
    }
    assert status["connectors"]["out"]["kind"] == "file"
    assert SECRET not in text and SECRET not in metrics
    assert 'crm_pulse_webhook_requests_total{code="200",connector="events"} 1' in metrics
    assert 'crm_pulse_webhook_requests_total{code="401",connector="events"} 1' in metrics
    assert "crm_pulse_ack_seconds_count 1" in metrics
    assert all(
        SECRET not in r.getMessage() and SECRET not in str(r.__dict__) for r in caplog.records
    )


async def test_a_request_that_cannot_be_stored_gets_503_and_can_be_retried() -> None:
    class BrokenInbox:
        calls = 0

        async def accept(self, connector: str, request: WebhookRequest) -> None:
            self.calls += 1
            if self.calls == 1:
                raise OSError("disk full")

    async def status() -> dict[str, Any]:
        return {}

    receiver = EventsReceiver(SECRET)
    inbox = BrokenInbox()
    app = build_app({"events": receiver}, inbox, status)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        body = json.dumps([deal(1)]).encode()
        headers = sign(SECRET, body)
        base = f"http://127.0.0.1:{port}"
        status_code, answer = await post(base, body, headers)
        assert status_code == 503 and answer["reason"] == "not stored; retry"
        assert (await post(base, body, headers))[0] == 200  # the same request, retried
    finally:
        await runner.cleanup()
