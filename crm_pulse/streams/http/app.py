"""The aiohttp application: webhook and ingress routes, ``/healthz``, ``/status``, ``/metrics``.

A webhook route reads the body (bounded by the receiver's ``max_body_bytes``), calls the
receiver's ``verify``, and hands the request to the inbox; only when the inbox has stored it
durably does the sender get its 2xx. Answers:

* 202 ``{"status": "accepted"}`` (or 200 with the receiver's ``ack_response(request)``:
  Salesforce Outbound Messages need a SOAP acknowledgement);
* 401 ``{"error": "unauthorized", "reason": ...}`` on :class:`Unauthorized`;
* 400 ``{"error": "invalid request", "message": ..., "problems": [...]}`` on :class:`DataError`;
* 413 when the body is larger than the receiver accepts (not read further);
* 503 with ``Retry-After`` when the inbox failed (the receiver's ``forget(request)``, if any, is
  called so the sender's retry of the same signed request is not refused as a replay).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from ...connectors.protocols import WebhookReceiver, WebhookRequest
from ...errors import ConfigError, DataError, RetriableError, Unauthorized
from ..logs import redact
from ..telemetry import Telemetry
from .inbox import Inbox
from .status import Status, StatusSource

__all__ = ["DEFAULT_MAX_BODY", "RESERVED_PATHS", "build_app"]

log = logging.getLogger("crm_pulse.streams.http")

DEFAULT_MAX_BODY = 8 * 1024 * 1024
THREAD_VERIFY_BYTES = 256 * 1024
"""Bodies at least this large are verified in a worker thread when the receiver allows it
(``verify_in_thread = True``), so parsing megabytes of JSON does not stall other requests."""
RESERVED_PATHS = ("/healthz", "/status", "/metrics")
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

HealthSource = Callable[[], "bool | Awaitable[bool]"]


def _json(status: int, data: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        content_type="application/json",
        headers=headers,
    )


async def _call(function: Callable[[], Any]) -> Any:
    result = function()
    return await result if inspect.isawaitable(result) else result


class _Routes:
    def __init__(
        self,
        inbox: Inbox,
        status: StatusSource,
        telemetry: Telemetry,
        health: HealthSource | None,
        retry_after: float,
    ) -> None:
        self.inbox = inbox
        self.status = status
        self.health = health
        self.telemetry = telemetry
        self.retry_after = retry_after
        self.requests = telemetry.counter(
            "crm_pulse_webhook_requests_total",
            "Webhook and ingress requests by connector and outcome.",
            ("connector", "outcome"),
        )
        self.latency = telemetry.histogram(
            "crm_pulse_webhook_ack_seconds",
            "Time from the start of a webhook request to its answer (accepted requests).",
            ("connector",),
        )
        self.bytes = telemetry.counter(
            "crm_pulse_webhook_bytes_total", "Bytes of accepted webhook bodies.", ("connector",)
        )

    def webhook(
        self, name: str, receiver: WebhookReceiver
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        limit = int(getattr(receiver, "max_body_bytes", None) or DEFAULT_MAX_BODY)
        forget = getattr(receiver, "forget", None)
        ack = getattr(receiver, "ack_response", None)
        threaded = bool(getattr(receiver, "verify_in_thread", False))

        async def handle(request: web.Request) -> web.StreamResponse:
            start = time.perf_counter()
            received_at_ms = time.time_ns() // 1_000_000
            if request.content_length is not None and request.content_length > limit:
                return self._too_large(name, limit, request)
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return self._too_large(name, limit, request)
            if len(body) > limit:
                return self._too_large(name, limit, request)
            req = WebhookRequest(
                method=request.method,
                url=str(request.url),
                headers=dict(request.headers),
                body=body,
                received_at_ms=received_at_ms,
            )
            try:
                if threaded and len(body) >= THREAD_VERIFY_BYTES:
                    await asyncio.to_thread(receiver.verify, req)
                else:
                    receiver.verify(req)
            except Unauthorized as exc:
                self.requests.inc(connector=name, outcome="unauthorized")
                log.warning(
                    "webhook request refused",
                    extra={"connector": name, "reason": exc.reason, "remote": request.remote},
                )
                return _json(401, {"error": "unauthorized", "reason": redact(exc.reason)})
            except DataError as exc:
                self.requests.inc(connector=name, outcome="invalid")
                problems = getattr(exc, "problems", None)
                listed = (
                    [p.as_dict() if hasattr(p, "as_dict") else str(p) for p in problems]
                    if problems is not None
                    else [str(exc)]
                )
                log.info(
                    "webhook request has invalid data",
                    extra={
                        "connector": name,
                        "problems": len(listed),
                        "first": str(listed[0])[:300],
                    },
                )
                return _json(
                    400,
                    {"error": "invalid request", "message": redact(str(exc)), "problems": listed},
                )
            except Exception:
                self.requests.inc(connector=name, outcome="error")
                log.exception("webhook verification failed", extra={"connector": name})
                return _json(500, {"error": "internal error"})
            try:
                await self.inbox.accept(name, req)
            except Exception as exc:
                if callable(forget):
                    forget(req)
                self.requests.inc(connector=name, outcome="unavailable")
                wait = self.retry_after
                if isinstance(exc, RetriableError) and getattr(exc, "retry_after", None):
                    wait = float(exc.retry_after)  # type: ignore[attr-defined]
                log.error(
                    "could not store a webhook request",
                    extra={
                        "connector": name,
                        "error": type(exc).__name__,
                        "detail": str(exc)[:300],
                    },
                )
                return _json(
                    503,
                    {"error": "unavailable", "reason": "the request could not be stored; retry"},
                    headers={"Retry-After": str(max(1, round(wait)))},
                )
            self.requests.inc(connector=name, outcome="accepted")
            self.bytes.inc(len(body), connector=name)
            self.latency.observe(time.perf_counter() - start, connector=name)
            if callable(ack):
                content_type, ack_body = ack(req)
                return web.Response(
                    status=200, body=ack_body, headers={"Content-Type": content_type}
                )
            return _json(202, {"status": "accepted"})

        return handle

    def _too_large(self, name: str, limit: int, request: web.Request) -> web.Response:
        self.requests.inc(connector=name, outcome="too_large")
        log.warning(
            "webhook request too large",
            extra={"connector": name, "limit": limit, "remote": request.remote},
        )
        response = _json(413, {"error": "payload too large", "limit_bytes": limit})
        response.force_close()
        return response

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            if self.health is not None:
                healthy = bool(await _call(self.health))
            else:
                current: Status = await _call(self.status)
                healthy = current.healthy
        except Exception:
            log.exception("health check failed")
            healthy = False
        if healthy:
            return web.Response(text="ok\n")
        return web.Response(status=503, text="unhealthy\n")

    async def status_route(self, request: web.Request) -> web.Response:
        try:
            current: Status = await _call(self.status)
        except Exception as exc:
            log.exception("status failed")
            return _json(500, {"error": "status unavailable", "kind": type(exc).__name__})
        return _json(200, current.to_dict())

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.telemetry.render().encode(), headers={"Content-Type": PROMETHEUS_TYPE}
        )


def build_app(
    receivers: Sequence[tuple[str, WebhookReceiver]],
    inbox: Inbox,
    status: StatusSource,
    telemetry: Telemetry,
    *,
    health: HealthSource | None = None,
    retry_after: float = 5.0,
) -> web.Application:
    """The application serving every receiver at its ``path`` plus the operations routes.

    ``status`` (plain or async) returns the current :class:`Status`; ``/healthz`` answers 200
    when ``health()`` (default: ``status().healthy``) is true. Two receivers on one path, or a
    receiver on an operations path, is a :class:`ConfigError`.
    """
    routes = _Routes(inbox, status, telemetry, health, retry_after)
    limits = [int(getattr(r, "max_body_bytes", None) or DEFAULT_MAX_BODY) for _, r in receivers]
    app = web.Application(client_max_size=max([DEFAULT_MAX_BODY, *limits]) + 1)
    taken: dict[str, str] = {}
    for name, receiver in receivers:
        path = receiver.path
        if not path.startswith("/"):
            raise ConfigError(f"connectors.{name}: webhook path {path!r} must start with '/'")
        if path in RESERVED_PATHS:
            raise ConfigError(f"connectors.{name}: webhook path {path} is reserved")
        if path in taken:
            raise ConfigError(
                f"connectors.{name}: webhook path {path} is already used by {taken[path]!r}"
            )
        taken[path] = name
        app.router.add_post(path, routes.webhook(name, receiver))
    app.router.add_get("/healthz", routes.healthz)
    app.router.add_get("/status", routes.status_route)
    app.router.add_get("/metrics", routes.metrics)
    return app
