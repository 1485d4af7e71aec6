"""The HTTP server of the embedded runtime: webhooks, the signed ingress, health, status and
Prometheus metrics (see :mod:`.app`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .app import Inbox, build_app
from .prometheus import HttpTelemetry, render

if TYPE_CHECKING:
    from ..runtime import EmbeddedRuntime

__all__ = ["HttpServer", "HttpTelemetry", "Inbox", "build_app", "render", "serve_runtime"]


class HttpServer:
    """Serves an application on host:port; :meth:`stop` finishes requests in flight."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> HttpServer:
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=10.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        for address in runner.addresses:
            self.port = int(address[1])
            break
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def serve_runtime(runtime: EmbeddedRuntime) -> HttpServer:
    """Start the HTTP server of an embedded runtime on ``runtime.listen``."""
    app = build_app(
        runtime.receivers,
        runtime.inbox,
        runtime.status_async,
        health=runtime.health,
        overview=runtime.overview,
        explain=runtime.explain,
    )
    settings = runtime.settings
    server = HttpServer(app)
    await server.start(settings.host, settings.port)
    runtime.http_port = server.port
    return server
