"""Serving a vendor simulator on 127.0.0.1 for tests, the sandbox and the demo.

Each simulator in :mod:`crm_pulse.sandbox` builds an :class:`aiohttp.web.Application`; :class:`FakeServer`
runs it on its own event loop in a background thread, so both the synchronous vendor clients
(simple-salesforce, hubspot-api-client) and async code can call it over real HTTP(S).
``latency`` (seconds, settable while serving) is the least time every answer takes, the simulator's
own work included, like a network round trip and a vendor's processing time (benchmarks switch it
on); ``statuses`` counts the answers by
HTTP status (the 429s a client provoked, for instance).
:class:`TestCA` makes a throw-away certificate authority (trustme) and a certificate for
``127.0.0.1`` and ``localhost``; clients trust ``ca.cert_path``.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType

import trustme
from aiohttp import web

__all__ = ["FakeServer", "TestCA"]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TestCA:
    """A test certificate authority and a server certificate for the loopback names."""

    __test__ = False  # not a pytest class

    def __init__(self) -> None:
        self._ca = trustme.CA()
        self._cert = self._ca.issue_cert("127.0.0.1", "localhost")
        self._dir = tempfile.TemporaryDirectory(prefix="crm-pulse-ca-")
        self.cert_path = Path(self._dir.name) / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.cert_path))

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(ctx)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self._ca.configure_trust(ctx)
        return ctx


class FakeServer:
    """Run an aiohttp application on 127.0.0.1 (a free port) in a background thread."""

    def __init__(
        self,
        app: web.Application,
        *,
        ca: TestCA | None = None,
        host: str = "127.0.0.1",
        latency: float = 0.0,
    ) -> None:
        self.app = app
        self.ca = ca
        self.host = host
        self.latency = latency
        """Seconds every request waits before the simulator handles it (0: none)."""
        self.statuses: collections.Counter[int] = collections.Counter()
        """Answers given, by HTTP status."""
        self.busy = 0.0
        """Seconds the simulator spent answering (its own work, without the latency padding):
        when an answer's share of it exceeds ``latency``, the simulator bounds the client."""
        self.in_flight = 0
        self.peak_in_flight = 0
        """Most requests ever being answered at once (a client's concurrency, seen from here)."""
        # outermost: every answer is counted, the simulator's refusals too; innermost: the
        # latency is the vendor's processing time, inside its rate and concurrency gates
        app.middlewares.insert(0, self._count)
        app.middlewares.append(self._delay)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @web.middleware
    async def _count(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self.statuses[exc.status] += 1
            raise
        finally:
            self.in_flight -= 1
        self.statuses[response.status] += 1
        return response

    @web.middleware
    async def _delay(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        started = time.monotonic()
        response = await handler(request)
        self.busy += time.monotonic() - started
        if self.latency > 0:  # the simulator's own work counts towards the answer's time
            await asyncio.sleep(max(0.0, started + self.latency - time.monotonic()))
        return response

    @property
    def url(self) -> str:
        scheme = "https" if self.ca else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> FakeServer:
        self._thread = threading.Thread(target=self._serve, name="fake-server", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise RuntimeError(f"the fake server did not start: {self._error}") from self._error
        return self

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._start())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._cleanup())
        loop.close()

    async def _start(self) -> None:
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        ssl_ctx = self.ca.server_context() if self.ca else None
        site = web.TCPSite(runner, self.host, 0, ssl_context=ssl_ctx)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]
        self._runner = runner

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
            self._loop = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
