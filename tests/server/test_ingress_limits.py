"""The HTTP app with the events receiver: oversize bodies and per-item problems, over loopback."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from crm_pulse.connectors.events import EventsReceiver, sign
from crm_pulse.connectors.protocols import WebhookRequest
from crm_pulse.streams.http import HttpServer, build_app

SECRET = "limits-secret-4321"


class MemoryInbox:
    def __init__(self) -> None:
        self.items: list[tuple[str, WebhookRequest]] = []

    async def accept(self, connector: str, request: WebhookRequest) -> None:
        self.items.append((connector, request))


async def _status() -> dict[str, Any]:
    return {}


def deals(n: int) -> list[dict[str, Any]]:
    return [
        {
            "source": "erp",
            "object": "deal",
            "id": f"d{i}",
            "op": "upsert",
            "version": 1,
            "fields": {"amount": "10", "status": "open"},
        }
        for i in range(n)
    ]


async def test_oversize_is_413_and_malformed_items_are_listed() -> None:
    inbox = MemoryInbox()
    receiver = EventsReceiver(SECRET, max_body_bytes=16 * 1024)
    server = await HttpServer(build_app({"events": receiver}, inbox, _status)).start("127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.port}/events"
    try:
        async with aiohttp.ClientSession() as s:
            big = json.dumps(deals(400)).encode()
            assert len(big) > 16 * 1024
            async with s.post(url, data=big, headers=sign(SECRET, big)) as r:
                assert r.status == 413
                assert (await r.json())["limit_bytes"] == 16 * 1024
            items = deals(3)
            items[1]["fields"]["amount"] = "ten"
            del items[2]["version"]
            bad = json.dumps(items).encode()
            async with s.post(url, data=bad, headers=sign(SECRET, bad)) as r:
                assert r.status == 400
                answer = await r.json()
            assert answer["problems"] == [
                {
                    "index": 1,
                    "field": "fields.amount",
                    "message": "expected a decimal number, got 'ten'",
                },
                {"index": 2, "field": "version", "message": "missing"},
            ]
            assert (
                "[1]: fields.amount" in answer["reason"]
                and "[2]: version: missing" in answer["reason"]
            )
            good = json.dumps(deals(2)).encode()
            async with s.post(url, data=good, headers=sign(SECRET, good)) as r:
                assert r.status == 200
    finally:
        await server.stop()
    assert len(inbox.items) == 1
    events = await receiver.parse(inbox.items[0][1])
    assert [e.id for e in events] == ["d0", "d1"]
