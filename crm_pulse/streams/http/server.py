"""Running the application: start on a host and port, stop gracefully."""

from __future__ import annotations

import logging

from aiohttp import web

__all__ = ["HttpServer"]

log = logging.getLogger("crm_pulse.streams.http")


class HttpServer:
    """Serves an application built by :func:`build_app`.

    ``stop`` closes the listening socket first (no new requests), then waits up to
    ``shutdown_timeout`` seconds for requests in flight to finish (an inbox write under way
    completes and its sender gets the answer), then closes the connections.
    """

    def __init__(self, app: web.Application, *, shutdown_timeout: float = 30.0) -> None:
        self.app = app
        self.shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self.host = ""
        self.port = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (port 0: a free one, then read ``self.port``)."""
        if self._runner is not None:
            raise RuntimeError("the server is already started")
        runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=self.shutdown_timeout, handle_signals=False
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.host = host
        addresses = runner.addresses
        self.port = int(addresses[0][1]) if addresses else port
        log.info("http server listening", extra={"host": host, "port": self.port})

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish, close; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await runner.cleanup()
        log.info("http server stopped", extra={"port": self.port})
