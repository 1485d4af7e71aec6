"""Zoho notifications against the runtime's own HTTP server: bad input gets a 4xx, never a 5xx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from crm_pulse.config import load_config_text
from crm_pulse.sandbox.server import FakeServer, TestCA
from crm_pulse.sandbox.zoho import FakeZoho
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime
from crm_pulse.streams.http import serve_runtime
from tests.ports import free_port as _free_port

from .harness import CHANNEL_TOKEN, CLIENT_ID, CLIENT_SECRET, REFRESH


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[FakeZoho, EmbeddedRuntime, str]]:
    fake = FakeZoho(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=REFRESH)
    port = _free_port()
    ca = TestCA()
    with FakeServer(fake.app(), ca=ca) as server:
        text = f"""
connectors:
  - zoho:
      client_id: ${{ZID}}
      client_secret: ${{ZSECRET}}
      refresh_token: ${{ZRT}}
      api_url: {server.url}
      accounts_url: {server.url}
      ca_cert: {ca.cert_path}
      notify_url: http://127.0.0.1:{port}/webhooks/zoho
      channel_token: ${{ZTOKEN}}
      poll_interval: 1h
      objects: [Deals]
runtime: {{state_path: "{tmp_path / "s.sqlite"}", listen: "127.0.0.1:{port}", debounce: 0s}}
"""
        env = {"ZID": CLIENT_ID, "ZSECRET": CLIENT_SECRET, "ZRT": REFRESH, "ZTOKEN": CHANNEL_TOKEN}
        runtime = EmbeddedRuntime(load_config_text(text, env=env))
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop, serve=serve_runtime))
        for _ in range(500):
            if fake.channels and runtime.pollers["zoho"].stats.last_ok_ms:
                break
            await asyncio.sleep(0.02)
        try:
            yield fake, runtime, f"http://127.0.0.1:{port}/webhooks/zoho"
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


async def test_bad_notifications_get_4xx_and_a_genuine_one_is_stored(
    served: tuple[FakeZoho, EmbeddedRuntime, str],
) -> None:
    fake, runtime, url = served
    deal = fake.create("Deals", {"Amount": 777, "Stage": "Qualification"})  # after the backfill
    _, genuine = fake.notification("Deals", "update", [deal])
    body = json.loads(genuine)
    cases = [
        (json.dumps({**body, "token": "guessed"}).encode(), 401),
        (json.dumps({k: v for k, v in body.items() if k != "token"}).encode(), 401),
        (json.dumps({**body, "channel_id": "7"}).encode(), 401),
        (b"{not json", 400),
        (json.dumps({**body, "ids": ["../../settings/fields"]}).encode(), 400),
        (json.dumps({**body, "ids": "all"}).encode(), 400),
        (json.dumps({**body, "operation": "drop"}).encode(), 400),
        (json.dumps([body]).encode(), 400),
        (b"x" * (2 * 1024 * 1024), 413),
        (genuine, 200),
    ]
    async with aiohttp.ClientSession() as session:
        for payload, status in cases:
            async with session.post(
                url, data=payload, headers={"Content-Type": "application/json"}
            ) as response:
                text = await response.text()
                assert response.status == status, (payload[:80], text)
                assert "Traceback" not in text and CHANNEL_TOKEN not in text
    # the genuine one is parsed from the stored copy: the deal is re-read
    for _ in range(200):
        count = runtime.db.call(
            lambda: runtime.db.conn.execute("SELECT count(*) FROM events").fetchone()[0]
        )
        if count:
            break
        await asyncio.sleep(0.02)
    bodies = runtime.db.call(
        lambda: [r[0] for r in runtime.db.conn.execute("SELECT body FROM events")]
    )
    (event,) = [json.loads(b) for b in bodies if json.loads(b)["id"] == deal]
    assert event["fields"]["amount"] == "777"
