"""The HTTP server of the embedded runtime: webhooks, the signed ingress, health, status and
Prometheus metrics (see :mod:`.app`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from aiohttp import web

from ...config.runtime import RuntimeSection
from ...connectors.protocols import WebhookReceiver
from .app import Inbox, build_app
from .prometheus import HttpTelemetry, render

__all__ = [
    "HttpServer",
    "HttpTelemetry",
    "Inbox",
    "Served",
    "build_app",
    "render",
    "serve_runtime",
]


class Served(Protocol):
    """What :func:`serve_runtime` serves: the embedded runtime, or the Faust edge."""

    http_port: int
    ops_port: int

    @property
    def settings(self) -> RuntimeSection: ...

    @property
    def receivers(self) -> Mapping[str, WebhookReceiver]: ...

    @property
    def inbox(self) -> Inbox: ...

    async def status_async(self) -> dict[str, Any]: ...

    def health(self) -> str | None: ...

    async def overview(self) -> dict[str, Any]: ...

    async def metric_values(self) -> list[dict[str, Any]]: ...

    async def explain(
        self, metric: str, window: str, group: Sequence[str], as_of: str | None = None
    ) -> dict[str, Any]: ...


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


async def serve_runtime(runtime: Served) -> HttpServer | _Servers:
    """Start the HTTP server of a runtime on ``runtime.listen`` (and the operations
    endpoints on ``runtime.ops_listen`` when it is set; a FatalError says when that address
    cannot be bound)."""
    from ..embedded import cannot_listen

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
