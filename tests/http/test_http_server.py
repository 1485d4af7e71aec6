"""The HTTP server over real loopback HTTP, with an in-memory inbox."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest

from crm_pulse.config.models import EventsSettings
from crm_pulse.connectors.events import SIGNATURE_HEADER, EventsConnector, EventsReceiver, sign
from crm_pulse.connectors.protocols import WebhookRequest
from crm_pulse.errors import ConfigError, RateLimited
from crm_pulse.streams.http import (
    ConnectorStatus,
    ErrorEntry,
    HttpServer,
    MemoryInbox,
    OutboxStatus,
    Status,
    build_app,
)
from crm_pulse.streams.logs import configure_logging, register_secrets
from crm_pulse.streams.telemetry import Telemetry

SECRET = "ingress-secret-9f8e7d6c5b4a"


@dataclass
class Env:
    server: HttpServer
    inbox: MemoryInbox
    telemetry: Telemetry
    session: aiohttp.ClientSession
    logs: io.StringIO
    connector: EventsConnector
    state: dict[str, object] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    settings = EventsSettings.model_validate(
        {"secret": SECRET, "sources": ["erp", "shop"], "max_body_bytes": 64 * 1024}
    )
    register_secrets(settings)
    connector = EventsConnector("events", settings)
    inbox = MemoryInbox()
    telemetry = Telemetry()
    state: dict[str, object] = {"healthy": True, "errors": []}

    def status() -> Status:
        return Status(
            healthy=bool(state["healthy"]),
            connectors=[
                ConnectorStatus(name="events", kind="events", events_total=len(inbox.items))
            ],
            outbox=OutboxStatus(depth=3, dead_letters=1),
            last_errors=list(state["errors"]),  # type: ignore[call-overload]
        )

    logs = io.StringIO()
    handler = configure_logging("info", "json", stream=logs)
    app = build_app([("events", connector.receiver)], inbox, status, telemetry)
    server = HttpServer(app, shutdown_timeout=5)
    await server.start("127.0.0.1", 0)
    session = aiohttp.ClientSession()
    try:
        yield Env(server, inbox, telemetry, session, logs, connector, state)
    finally:
        await session.close()
        await server.stop()
        logging.getLogger().removeHandler(handler)


def events_body(n: int = 2, source: str = "erp", start: int = 0) -> bytes:
    return json.dumps(
        [
            {
                "source": source,
                "object": "deal",
                "id": f"d{i}",
                "op": "upsert",
                "version": 1,
                "fields": {"amount": "10", "status": "open"},
            }
            for i in range(start, start + n)
        ]
    ).encode()


async def post(
    env: Env, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, object], dict[str, str]]:
    async with env.session.post(f"{env.url}/events", data=body, headers=headers) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


async def test_valid_signed_post_is_stored_then_acknowledged(env: Env) -> None:
    body = events_body(3)
    status, data, _ = await post(env, body, sign(SECRET, body))
    assert status == 202 and data == {"status": "accepted"}
    assert len(env.inbox.items) == 1
    name, req = env.inbox.items[0]
    assert name == "events" and req.body == body
    events = await env.connector.receiver.parse(req)
    assert [e.id for e in events] == ["d0", "d1", "d2"]


@pytest.mark.parametrize("case", ["forged", "stale", "unsigned", "wrong_source"])
async def test_refused_requests_are_401_and_not_stored(env: Env, case: str) -> None:
    body = events_body(source="hubspot" if case == "wrong_source" else "erp")
    headers = sign(SECRET, body)
    if case == "forged":
        headers = sign("not-the-secret", body)
    elif case == "stale":
        headers = sign(SECRET, body, int(time.time()) - 3600)
    elif case == "unsigned":
        del headers[SIGNATURE_HEADER]
    status, data, _ = await post(env, body, headers)
    assert status == 401
    assert data["error"] == "unauthorized" and data["reason"]
    assert env.inbox.items == []
    line = json.loads(env.logs.getvalue().splitlines()[-1])
    assert line["connector"] == "events" and line["reason"] == data["reason"]
    assert line["level"] == "warning"


async def test_replayed_request_is_401(env: Env) -> None:
    body = events_body()
    headers = sign(SECRET, body)
    assert (await post(env, body, headers))[0] == 202
    status, data, _ = await post(env, body, headers)
    assert status == 401 and "replayed" in str(data["reason"])
    assert len(env.inbox.items) == 1


async def test_oversize_is_refused_without_storing(env: Env) -> None:
    body = events_body(2000)
    assert len(body) > 64 * 1024
    async with env.session.post(f"{env.url}/events", data=body, headers=sign(SECRET, body)) as resp:
        assert resp.status == 413
        assert (await resp.json())["limit_bytes"] == 64 * 1024
    assert env.inbox.items == []


async def test_malformed_events_are_400_naming_index_and_field(env: Env) -> None:
    items = json.loads(events_body(3))
    items[1]["fields"]["amount"] = "ten"
    del items[2]["version"]
    body = json.dumps(items).encode()
    status, data, _ = await post(env, body, sign(SECRET, body))
    assert status == 400
    assert data["problems"] == [
        {"index": 1, "field": "fields.amount", "message": "expected a decimal number, got 'ten'"},
        {"index": 2, "field": "version", "message": "missing"},
    ]
    assert "[1] fields.amount" in str(data["message"]) and "[2] version" in str(data["message"])
    assert env.inbox.items == []


async def test_inbox_failure_is_503_with_retry_after_and_retry_succeeds(env: Env) -> None:
    env.inbox.fail = OSError("disk full")
    body = events_body()
    headers = sign(SECRET, body)
    status, data, resp_headers = await post(env, body, headers)
    assert status == 503 and resp_headers["Retry-After"] == "5"
    assert data["error"] == "unavailable"
    assert env.inbox.items == []
    env.inbox.fail = RateLimited("busy", retry_after=12)
    status, _, resp_headers = await post(env, body, headers)
    assert status == 503 and resp_headers["Retry-After"] == "12"
    env.inbox.fail = None
    status, _, _ = await post(env, body, headers)  # the same signed request, retried
    assert status == 202 and len(env.inbox.items) == 1


async def test_healthz_follows_the_runtime(env: Env) -> None:
    async with env.session.get(f"{env.url}/healthz") as resp:
        assert resp.status == 200 and (await resp.text()).strip() == "ok"
    env.state["healthy"] = False
    async with env.session.get(f"{env.url}/healthz") as resp:
        assert resp.status == 503


async def test_status_json(env: Env) -> None:
    body = events_body()
    await post(env, body, sign(SECRET, body))
    async with env.session.get(f"{env.url}/status") as resp:
        assert resp.status == 200
        data = await resp.json()
    assert data["healthy"] is True
    assert data["connectors"][0]["name"] == "events"
    assert data["connectors"][0]["events_total"] == 1
    assert data["outbox"]["depth"] == 3 and data["outbox"]["dead_letters"] == 1


async def test_metrics_in_prometheus_format(env: Env) -> None:
    body = events_body()
    await post(env, body, sign(SECRET, body))
    await post(env, body, sign("forged-key", body))
    async with env.session.get(f"{env.url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
    assert 'crm_pulse_webhook_requests_total{connector="events",outcome="accepted"} 1' in text
    assert 'crm_pulse_webhook_requests_total{connector="events",outcome="unauthorized"} 1' in text
    assert "# TYPE crm_pulse_webhook_ack_seconds histogram" in text
    assert 'crm_pulse_webhook_ack_seconds_bucket{connector="events",le="+Inf"} 1' in text
    assert 'crm_pulse_webhook_ack_seconds_count{connector="events"} 1' in text


async def test_secret_never_in_status_responses_or_logs(env: Env) -> None:
    # a vendor library quoting the credential in an error must not leak it through /status
    env.state["errors"] = [
        ErrorEntry("2026-01-01T00:00:00Z", "events", f"auth failed with key {SECRET}")
    ]
    body = events_body()
    seen = []
    for headers in (sign(SECRET, body), sign(SECRET, body), sign("x" + SECRET, body), {}):
        async with env.session.post(f"{env.url}/events", data=body, headers=headers) as resp:
            seen.append(await resp.text())
    env.inbox.fail = RuntimeError(f"connection string with {SECRET}")
    other = events_body(start=100)
    async with env.session.post(
        f"{env.url}/events", data=other, headers=sign(SECRET, other)
    ) as resp:
        assert resp.status == 503
        seen.append(await resp.text())
    for path in ("/status", "/metrics", "/healthz"):
        async with env.session.get(f"{env.url}{path}") as resp:
            seen.append(await resp.text())
    import logging

    logging.getLogger("crm_pulse.test").error("leak %s", SECRET, extra={"detail": SECRET})
    logs = env.logs.getvalue()
    assert "**********" in seen[-3]  # the status error message was redacted
    assert "**********" in logs
    for text in [*seen, logs]:
        assert SECRET not in text


async def test_ack_response_of_the_receiver_is_used() -> None:
    class SoapReceiver(EventsReceiver):
        def ack_response(self, request: WebhookRequest) -> tuple[str, bytes]:
            return "text/xml; charset=utf-8", b"<Ack>true</Ack>"

    inbox = MemoryInbox()
    app = build_app(
        [("sf", SoapReceiver(SECRET, path="/sf"))], inbox, lambda: Status(True), Telemetry()
    )
    server = HttpServer(app)
    await server.start("127.0.0.1", 0)
    try:
        body = events_body()
        async with (
            aiohttp.ClientSession() as s,
            s.post(f"{server.url}/sf", data=body, headers=sign(SECRET, body)) as resp,
        ):
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/xml")
            assert await resp.read() == b"<Ack>true</Ack>"
    finally:
        await server.stop()
    assert len(inbox.items) == 1


async def test_stop_finishes_requests_in_flight() -> None:
    gate = asyncio.Event()
    entered = asyncio.Event()

    class SlowInbox(MemoryInbox):
        async def accept(self, connector: str, request: WebhookRequest) -> None:
            entered.set()
            await gate.wait()
            await super().accept(connector, request)

    inbox = SlowInbox()
    app = build_app([("events", EventsReceiver(SECRET))], inbox, lambda: Status(True), Telemetry())
    server = HttpServer(app, shutdown_timeout=10)
    await server.start("127.0.0.1", 0)
    body = events_body()
    async with aiohttp.ClientSession() as session:

        async def send() -> int:
            async with session.post(
                f"{server.url}/events", data=body, headers=sign(SECRET, body)
            ) as r:
                return r.status

        pending = asyncio.create_task(send())
        await entered.wait()
        stopping = asyncio.create_task(server.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()
        gate.set()
        assert await pending == 202
        await stopping
    assert len(inbox.items) == 1


def test_duplicate_and_reserved_paths_are_config_errors() -> None:
    a, b = EventsReceiver(SECRET), EventsReceiver(SECRET)
    with pytest.raises(ConfigError, match="already used by 'a'"):
        build_app([("a", a), ("b", b)], MemoryInbox(), lambda: Status(True), Telemetry())
    with pytest.raises(ConfigError, match="reserved"):
        build_app(
            [("a", EventsReceiver(SECRET, path="/status"))],
            MemoryInbox(),
            lambda: Status(True),
            Telemetry(),
        )


async def test_async_status_source() -> None:
    async def status() -> Status:
        return Status(False, problems=["log not writable"])

    server = HttpServer(build_app([], MemoryInbox(), status, Telemetry()))
    await server.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{server.url}/healthz") as r:
                assert r.status == 503
            async with s.get(f"{server.url}/status") as r:
                assert (await r.json())["problems"] == ["log not writable"]
    finally:
        await server.stop()


async def test_large_body_verified_in_a_thread_still_checked() -> None:
    inbox = MemoryInbox()
    receiver = EventsReceiver(SECRET, max_body_bytes=4 << 20)
    server = HttpServer(build_app([("events", receiver)], inbox, lambda: Status(True), Telemetry()))
    await server.start("127.0.0.1", 0)
    body = events_body(2500)
    assert len(body) >= 256 * 1024
    try:
        async with aiohttp.ClientSession() as s:
            headers = sign(SECRET, body)
            async with s.post(f"{server.url}/events", data=body, headers=headers) as r:
                assert r.status == 202
            async with s.post(f"{server.url}/events", data=body, headers=headers) as r:
                assert r.status == 401  # a replay
            async with s.post(f"{server.url}/events", data=body, headers=sign("bad", body)) as r:
                assert r.status == 401
    finally:
        await server.stop()
    assert len(inbox.items) == 1
