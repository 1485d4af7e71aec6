"""Serving a vendor simulator on 127.0.0.1 for tests, the sandbox and the demo.

Each simulator in :mod:`crm_pulse.sandbox` builds an :class:`aiohttp.web.Application`; :class:`FakeServer`
runs it on its own event loop in a background thread, so both the synchronous vendor clients
(simple-salesforce, hubspot-api-client) and async code can call it over real HTTP(S).
``latency`` (seconds, settable while serving) is the least time every answer takes, the simulator's
own work included, like a network round trip and a vendor's processing time (benchmarks switch it
on); ``statuses`` counts the answers by
HTTP status (the 429s a client provoked, for instance). :meth:`FakeServer.hold` is how a test shows
that calls overlap without reading a clock: answers are held until the expected number of requests
are in flight together (a client that waits for each answer before the next call never gets there,
and the hold gives up after a generous timeout, which the test sees as :attr:`Hold.timed_out`).
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

__all__ = ["FakeServer", "Hold", "TestCA"]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Hold:
    """Answers held until ``count`` (matching) requests are in flight at once: a latch, not a
    clock. Once met it lets everything through; if the requests have not all arrived within
    ``timeout`` seconds, it lets the held answers go and records ``timed_out`` (the calls were
    not made side by side). Only the server's own loop touches it after it is armed."""

    def __init__(
        self, count: int, timeout: float, match: Callable[[web.Request], bool] | None
    ) -> None:
        self.count = count
        self.timeout = timeout
        self.match = match
        self.waiting = 0
        self.peak = 0
        """Most matching requests ever held together."""
        self.arrived: list[str] = []
        """The matching requests' paths, in the order they arrived while the hold was armed."""
        self.met = False
        self.timed_out = False
        self._event: asyncio.Event | None = None

    async def wait(self, request: web.Request) -> None:
        if self.met or self.timed_out or (self.match is not None and not self.match(request)):
            return
        if self._event is None:
            self._event = asyncio.Event()
        self.arrived.append(request.path)
        self.waiting += 1
        self.peak = max(self.peak, self.waiting)
        try:
            if self.waiting >= self.count:
                self.met = True
                self._event.set()
                return
            try:
                await asyncio.wait_for(self._event.wait(), self.timeout)
            except TimeoutError:
                self.timed_out = not self.met
                self._event.set()
        finally:
            self.waiting -= 1


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
        self.held: Hold | None = None
        """The hold armed by :meth:`hold` (None: answers are never held)."""
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
        if self.held is not None:  # the answer is ready; it leaves once the others are in flight
            await self.held.wait(request)
        if self.latency > 0:  # the simulator's own work counts towards the answer's time
            await asyncio.sleep(max(0.0, started + self.latency - time.monotonic()))
        return response

    def hold(
        self,
        count: int,
        *,
        timeout: float = 20.0,
        match: Callable[[web.Request], bool] | None = None,
    ) -> Hold:
        """From now on, hold every answer (to a request ``match`` accepts, if given) until
        ``count`` of them are in flight at once. Arm it before the client starts the calls;
        assert ``met`` afterwards. Generous ``timeout``: a loaded machine is slow, not wrong."""
        self.held = Hold(count, timeout, match)
        return self.held

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
