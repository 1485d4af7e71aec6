"""The HTTP server of the embedded runtime: webhooks, the signed ingress, health, status and
Prometheus metrics (see :mod:`.app`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from aiohttp import web

from .app import Inbox, build_app
from .prometheus import HttpTelemetry, render

if TYPE_CHECKING:
    from ..embedded.runtime import EmbeddedRuntime

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


class _Servers:
    """The webhook server and the operations server, stopped together."""

    def __init__(self, *servers: HttpServer) -> None:
        self.servers = servers

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop()


async def serve_runtime(runtime: EmbeddedRuntime) -> HttpServer | _Servers:
    """Start the HTTP server of an embedded runtime on ``runtime.listen`` (and the operations
    endpoints on ``runtime.ops_listen`` when it is set; a FatalError says when that address
    cannot be bound)."""
    from ..embedded.runtime import cannot_listen

    settings = runtime.settings
    token = settings.ops_token.get_secret_value() if settings.ops_token is not None else None

    def app(routes: Literal["all", "webhooks", "ops"]) -> web.Application:
        return build_app(
            runtime.receivers,
            runtime.inbox,
            runtime.status_async,
            health=runtime.health,
            overview=runtime.overview,
            values=runtime.metric_values,
            explain=runtime.explain,
            ops_token=token,
            routes=routes,
        )

    if settings.ops_listen is None:
        server = await HttpServer(app("all")).start(settings.host, settings.port)
        runtime.http_port = server.port
        return server
    hooks = await HttpServer(app("webhooks")).start(settings.host, settings.port)
    host, _, port = settings.ops_listen.rpartition(":")
    host = host[1:-1] if host.startswith("[") else host
    try:
        ops = await HttpServer(app("ops")).start(host, int(port))
    except OSError as exc:
        await hooks.stop()
        raise cannot_listen(exc, "runtime.ops_listen", settings.ops_listen) from None
    except BaseException:
        await hooks.stop()
        raise
    runtime.http_port = hooks.port
    runtime.ops_port = ops.port
    return _Servers(hooks, ops)
