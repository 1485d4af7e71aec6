"""FakeServer.hold: how the connector tests show calls overlap without reading a clock."""

from __future__ import annotations

import asyncio

import httpx
from aiohttp import web

from crm_pulse.sandbox.server import FakeServer


def _app() -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path})

    app = web.Application()
    app.router.add_get("/{name}", answer)
    return app


async def test_calls_made_side_by_side_meet_the_hold() -> None:
    with FakeServer(_app()) as server:
        held = server.hold(3)
        async with httpx.AsyncClient(base_url=server.url) as client:
            answers = await asyncio.gather(*(client.get(f"/{n}") for n in "abc"))
        assert [a.json()["path"] for a in answers] == ["/a", "/b", "/c"]
        assert held.met and not held.timed_out and held.peak == 3
        assert server.peak_in_flight == 3


async def test_calls_made_one_after_another_time_the_hold_out_and_then_pass() -> None:
    with FakeServer(_app()) as server:
        held = server.hold(2, timeout=0.2)
        async with httpx.AsyncClient(base_url=server.url) as client:
            for n in "ab":
                assert (await client.get(f"/{n}")).status_code == 200
        assert held.timed_out and not held.met and held.arrived == ["/a"]


async def test_only_matching_requests_are_held_or_counted() -> None:
    with FakeServer(_app()) as server:
        held = server.hold(2, match=lambda request: request.path != "/setup")
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/setup")).status_code == 200  # not held: no deadlock
            await asyncio.gather(client.get("/a"), client.get("/b"))
        assert held.met and sorted(held.arrived) == ["/a", "/b"]
