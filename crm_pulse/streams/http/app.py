"""The runtime's HTTP application (aiohttp): webhooks, the ingress, and operations.

* ``POST <receiver.path>``: 413 without reading when Content-Length exceeds the receiver's
  ``max_body_bytes``; otherwise read the body, ``verify`` (401 with the reason on
  :class:`~crm_pulse.errors.Unauthorized`, 400 listing the problems on
  :class:`~crm_pulse.errors.DataError`), store the request durably in the inbox, then 2xx. If the
  inbox cannot store it the answer is 503 with Retry-After: never a 2xx before durability.
* ``GET /healthz``: 200 ``ok`` or 503 with the reason.
* ``GET /status``: JSON (cursors, lag, events/s, outbox depth, dead letters, last errors; no
  secrets: it is built from names and counts only).
* ``GET /metrics``: Prometheus text.
* ``GET /``: a small read-only status page (``page.html``) drawing ``GET /overview`` (status,
  company-wide metric values with six months of history, recent write-backs).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any, Protocol

from aiohttp import web

from ...connectors.protocols import WebhookReceiver, WebhookRequest
from ...errors import DataError, Unauthorized
from .prometheus import HttpTelemetry, render

__all__ = ["Inbox", "build_app"]

log = logging.getLogger("crm_pulse.http")

MAX_BODY = 16 * 1024 * 1024
TELEMETRY = web.AppKey("telemetry", HttpTelemetry)


class Inbox(Protocol):
    async def accept(self, connector: str, request: WebhookRequest) -> None:
        """Return only once the request is durable."""


def _json(
    data: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=str, indent=1),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def build_app(
    receivers: Mapping[str, WebhookReceiver],
    inbox: Inbox,
    status: Callable[[], Awaitable[dict[str, Any]]],
    *,
    health: Callable[[], str | None] = lambda: None,
    telemetry: HttpTelemetry | None = None,
    overview: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    explain: Callable[[str, str, list[str], str | None], Awaitable[dict[str, Any]]] | None = None,
) -> web.Application:
    """``receivers``: connector name -> receiver; ``health`` returns None or why it is unhealthy."""
    app = web.Application(client_max_size=MAX_BODY)
    tele = telemetry or HttpTelemetry()
    app[TELEMETRY] = tele

    def webhook(
        name: str, receiver: WebhookReceiver
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            code = 500
            try:
                response = await _handle(name, receiver, request)
                code = response.status
                return response
            finally:
                tele.observe(name, code, time.perf_counter() - started)

        return handle

    async def _handle(name: str, receiver: WebhookReceiver, request: web.Request) -> web.Response:
        limit = receiver.max_body_bytes
        if limit is not None and (request.content_length or 0) > limit:
            # refused before reading: the sender learns the limit, we buffer nothing
            log.warning(
                "webhook refused: body too large",
                extra={"connector": name, "limit": limit, "remote": request.remote},
            )
            response = _json({"error": "payload too large", "limit_bytes": limit}, 413)
            response.force_close()
            return response
        body = await request.read()
        req = WebhookRequest(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers),
            body=body,
            received_at_ms=int(time.time() * 1000),
        )
        try:
            receiver.verify(req)
        except Unauthorized as exc:
            log.warning(
                "webhook refused",
                extra={"connector": name, "reason": exc.reason, "remote": request.remote},
            )
            return _json({"error": "unauthorized", "reason": exc.reason}, 401)
        except DataError as exc:
            log.warning("webhook body refused", extra={"connector": name, "reason": str(exc)})
            answer: dict[str, object] = {"error": "bad request", "reason": str(exc)}
            problems = exc.item_problems()
            if problems:  # the ingress names every bad item
                answer["problems"] = problems
            return _json(answer, 400)
        try:
            await inbox.accept(name, req)
        except Exception as exc:
            receiver.release(req)
            log.error(
                "webhook could not be stored; answered 503",
                extra={"connector": name, "reason": type(exc).__name__},
            )
            return _json(
                {"error": "unavailable", "reason": "not stored; retry"}, 503, {"Retry-After": "5"}
            )
        ack = receiver.ack_response(req)
        if ack is not None:
            content_type, payload = ack
            return web.Response(body=payload, status=200, content_type=content_type.split(";")[0])
        return _json({"accepted": True}, 200)

    for name, receiver in receivers.items():
        app.router.add_post(receiver.path, webhook(name, receiver))

    async def healthz(request: web.Request) -> web.Response:
        problem = health()
        if problem is None:
            return web.Response(text="ok\n")
        return web.Response(text=f"unhealthy: {problem}\n", status=503)

    async def status_page(request: web.Request) -> web.Response:
        return _json(await status())

    async def metrics(request: web.Request) -> web.Response:
        text = render(await status(), tele)
        return web.Response(
            text=text, content_type="text/plain", charset="utf-8", headers={"X-Format": "0.0.4"}
        )

    async def page(request: web.Request) -> web.Response:
        html = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    async def overview_json(request: web.Request) -> web.Response:
        if overview is None:
            return _json({"status": await status(), "metrics": [], "writes": []})
        return _json(await overview())

    async def explain_json(request: web.Request) -> web.Response:
        """``/explain?metric=win_rate&window=2026-Q1&group=owner_id=u3[&as_of=...]``: the
        records that make a value (``crm-pulse explain`` as JSON); 400 says what is wrong."""
        if explain is None:
            return _json({"error": "explain is not available here"}, 404)
        q = request.query
        metric, window = q.get("metric"), q.get("window")
        if not metric or not window:
            return _json(
                {"error": "give metric and window, e.g. ?metric=won_revenue&window=2026-03"}, 400
            )
        try:
            return _json(await explain(metric, window, q.getall("group", []), q.get("as_of")))
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)

    app.router.add_get("/", page)
    app.router.add_get("/explain", explain_json)
    app.router.add_get("/overview", overview_json)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/status", status_page)
    app.router.add_get("/metrics", metrics)
    return app
