"""An embedded runtime serving over real loopback HTTP, started the one way the server tests
need it: a deployment template (``{out}``, ``{state}``, ``{port}`` filled in), the signed
ingress's secret, and a stop that waits for the runtime to finish."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crm_pulse.config import load_config_text
from crm_pulse.connectors.events import sign
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime
from crm_pulse.streams.http import serve_runtime
from tests.ports import free_port

from .test_ingress_http import SECRET, post, wait_for


@dataclass
class Served:
    """A running runtime and the address it serves on."""

    runtime: EmbeddedRuntime
    base: str

    async def publish(self, events: list[dict[str, Any]], timeout: float = 30) -> None:
        """Post ``events`` signed to ``/events`` and wait until the runtime consumed them."""
        consumed = self.runtime.consumed_events + len(events)
        body = json.dumps(events).encode()
        status, answer = await post(self.base, body, sign(SECRET, body))
        assert status == 200, answer

        async def applied() -> bool:
            return self.runtime.consumed_events >= consumed

        await wait_for(applied, timeout)


StartRuntime = Callable[[str], Awaitable[Served]]


@pytest.fixture
async def embedded_server(tmp_path: Path) -> AsyncIterator[StartRuntime]:
    """Starts an embedded runtime from a deployment template (``{out}``: ``out.jsonl`` and
    ``{state}``: ``s.sqlite`` in ``tmp_path``, ``{port}``: a free port) once it listens; every
    runtime started is stopped, and waited for, after the test."""
    started: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(template: str) -> Served:
        port = free_port()
        text = template.format(out=tmp_path / "out.jsonl", state=tmp_path / "s.sqlite", port=port)
        runtime = EmbeddedRuntime(
            load_config_text(text, base_dir=tmp_path, env={"INGRESS_SECRET": SECRET})
        )
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop, serve=serve_runtime))
        started.append((stop, task))

        async def listening() -> bool:
            return runtime.http_port != 0 or task.done()

        await wait_for(listening, 30)
        if task.done():
            task.result()  # the runtime's own error, if it stopped before listening
            raise AssertionError("the runtime stopped before it listened")
        return Served(runtime, f"http://127.0.0.1:{port}")

    try:
        yield start
    finally:
        for stop, _task in started:
            stop.set()
        for _stop, task in started:
            await asyncio.wait_for(task, 30)
