"""The runtime's HTTP application (aiohttp): webhooks, the ingress, and operations.

* ``POST <receiver.path>``: 413 without reading when Content-Length exceeds the receiver's
  ``max_body_bytes`` (:data:`DEFAULT_BODY_LIMIT` for receivers without one), and 413 as soon as
  a chunked body grows past it; otherwise read the body, ``verify`` (401 with the reason on
  :class:`~crm_pulse.errors.Unauthorized`, 400 listing the problems on
  :class:`~crm_pulse.errors.DataError`, 400 for anything else a receiver raises on a malformed
  request: never a 5xx for bad input), store the request durably in the inbox, then 2xx. An
  exact repeat of a request already stored is answered 200 with ``"duplicate": true`` and stores
  nothing. If the inbox cannot store it the answer is 503 with Retry-After: never a 2xx before
  durability.
* ``GET /healthz``: 200 ``ok`` or 503 with the reason.
* ``GET /status``: JSON (cursors, lag, events/s, outbox depth, dead letters, last errors; no
  secrets: it is built from names and counts only).
* ``GET /metrics``: Prometheus text.
* ``GET /``: a small read-only status page (``page.html``) drawing ``GET /overview`` (status,
  company-wide metric values with six months of history, recent write-backs).

With an ``ops_token`` the operations endpoints (``/``, ``/status``, ``/metrics``,
``/overview``, ``/explain``) answer 401 unless the request carries ``Authorization: Bearer
<token>`` (or HTTP Basic with the token as password, so a browser can open the status page);
``/healthz`` stays open for load balancers. ``routes`` serves the webhooks, the operations endpoints or
both, so the runtime can listen for them on separate addresses.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any, Literal, Protocol

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from ...connectors.protocols import WebhookReceiver, WebhookRequest
from ...errors import DataError, Unauthorized
from .prometheus import HttpTelemetry, render

__all__ = ["Inbox", "build_app"]

log = logging.getLogger("crm_pulse.http")

MAX_BODY = 16 * 1024 * 1024
DEFAULT_BODY_LIMIT = 8 * 1024 * 1024
"""Largest body of a receiver that declares no ``max_body_bytes`` (vendor webhooks)."""
TELEMETRY = web.AppKey("telemetry", HttpTelemetry)


class Inbox(Protocol):
    async def accept(self, connector: str, request: WebhookRequest) -> bool | None:
        """Return only once the request is durable; False when it is an exact repeat of a
        request already stored (answered as a duplicate, stored nothing)."""


class _QuietProtocolErrors(logging.Filter):
    """aiohttp answers a malformed request (bad chunking, a header too long, a body that does
    not decompress) with 400 itself and logs it as an error with a traceback; for input from
    outside that is a one-line warning (a traceback per hostile request would flood the logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None and not isinstance(exc, HttpProcessingError | RequestPayloadError):
            exc = exc.__cause__ or exc.__context__
        if exc is None:
            return True
        record.msg, record.args = "malformed request refused: %s", (" ".join(str(exc).split()),)
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_QUIET = _QuietProtocolErrors()
logging.getLogger("aiohttp.server").addFilter(_QUIET)


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
    ops_token: str | None = None,
    routes: Literal["all", "webhooks", "ops"] = "all",
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

    def too_large(name: str, limit: int, request: web.Request) -> web.Response:
        log.warning(
            "webhook refused: body too large",
            extra={"connector": name, "limit": limit, "remote": request.remote},
        )
        response = _json({"error": "payload too large", "limit_bytes": limit}, 413)
        response.force_close()
        return response

    async def _handle(name: str, receiver: WebhookReceiver, request: web.Request) -> web.Response:
        declared = receiver.max_body_bytes
        limit = declared if declared is not None else DEFAULT_BODY_LIMIT
        if (request.content_length or 0) > limit:
            # refused before reading: the sender learns the limit, we buffer nothing
            return too_large(name, limit, request)
        chunks: list[bytes] = []
        size = 0
        try:
            # counted after decompression: a small gzip body cannot expand past the limit
            async for chunk in request.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > limit:  # a chunked body (no Content-Length) that keeps growing
                    return too_large(name, limit, request)
                chunks.append(chunk)
        except (HttpProcessingError, ValueError, OSError, RequestPayloadError) as exc:
            # a body that cannot be decoded (bad gzip or deflate), or a broken transfer
            log.warning(
                "webhook body unreadable",
                extra={"connector": name, "reason": f"{type(exc).__name__}"},
            )
            response = _json(
                {"error": "bad request", "reason": "the body could not be read or decoded"}, 400
            )
            response.force_close()
            return response
        body = b"".join(chunks)
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
                answer["problems"] = problems[:100]
            return _json(answer, 400)
        except Exception as exc:  # a receiver failing on a malformed request: still a 4xx
            log.error(
                "webhook receiver failed on a request; answered 400",
                extra={"connector": name, "reason": f"{type(exc).__name__}: {exc}"[:300]},
            )
            return _json({"error": "bad request", "reason": "the request could not be read"}, 400)
        try:
            stored = await inbox.accept(name, req)
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
        if stored is False:
            return _json({"accepted": True, "duplicate": True}, 200)
        return _json({"accepted": True}, 200)

    if routes != "ops":
        for name, receiver in receivers.items():
            app.router.add_post(receiver.path, webhook(name, receiver))

    def authorized(request: web.Request) -> bool:
        if not ops_token:
            return True
        scheme, _, given = (request.headers.get("Authorization") or "").partition(" ")
        given = given.strip()
        if scheme.lower() == "basic":
            try:
                given = base64.b64decode(given, validate=True).decode().partition(":")[2]
            except ValueError:
                return False
        elif scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.encode(), ops_token.encode())

    def guarded(
        handler: Callable[[web.Request], Awaitable[web.Response]],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def check(request: web.Request) -> web.Response:
            if not authorized(request):
                return web.Response(
                    text="unauthorized: send Authorization: Bearer <runtime.ops_token>\n",
                    status=401,
                    headers={"WWW-Authenticate": 'Basic realm="crm-pulse", charset="UTF-8"'},
                )
            return await handler(request)

        return check

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

    app.router.add_get("/healthz", healthz)
    if routes != "webhooks":
        app.router.add_get("/", guarded(page))
        app.router.add_get("/overview", guarded(overview_json))
        app.router.add_get("/explain", guarded(explain_json))
        app.router.add_get("/status", guarded(status_page))
        app.router.add_get("/metrics", guarded(metrics))
    return app
