"""The generic ingress receiver: canonical events POSTed as JSON, signed (see :mod:`.signing`).

The body is one event object, an array of them, or JSON lines. :meth:`EventsReceiver.verify`
authenticates (signature, timestamp within ``tolerance``, not a replay, size) and then validates
every event, so a bad request is refused with the reason before anything is stored:
:class:`~crm_pulse.errors.Unauthorized` (401) or :class:`~crm_pulse.errors.DataError` (400) that
names each bad item by index and field.
"""

from __future__ import annotations

import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from ...errors import DataError, Unauthorized
from ...metrics.events import Event
from ..protocols import WebhookRequest
from .signing import HEADER, parse_header, signature

__all__ = ["EventsReceiver"]

_MAX_REPORTED = 20


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: missing" if err["type"] == "missing" else f"{loc}: {msg}")
    return "; ".join(parts)


def decode_events(body: bytes) -> list[Event]:
    """Parse a body into events; DataError lists every bad item (index and field)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError("the body is not UTF-8 text") from None
    items: list[Any]
    try:
        doc = json.loads(text)
        items = doc if isinstance(doc, list) else [doc]
    except json.JSONDecodeError:
        try:
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise DataError(f"not JSON, a JSON array or JSON lines: {exc.msg}") from None
    if not items:
        raise DataError("no events in the body")
    events: list[Event] = []
    problems: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"[{i}]: expected an event object, got {type(item).__name__}")
            continue
        try:
            events.append(Event.model_validate(item))
        except ValidationError as exc:
            problems.append(f"[{i}]: {_reason(exc)}")
    if problems:
        more = (
            f" (and {len(problems) - _MAX_REPORTED} more)" if len(problems) > _MAX_REPORTED else ""
        )
        raise DataError(
            f"{len(problems)} bad event(s): " + "; ".join(problems[:_MAX_REPORTED]) + more
        )
    return events


class EventsReceiver:
    """Verifies and parses requests to the generic ingress."""

    def __init__(
        self,
        secret: str,
        *,
        path: str = "/events",
        tolerance: float = 300.0,
        max_body_bytes: int = 4 * 1024 * 1024,
        sources: Sequence[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret.encode()
        self.path = path
        self.tolerance = tolerance
        self.max_body_bytes = max_body_bytes
        self.sources = frozenset(sources) if sources is not None else None
        self.clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def _remember(self, sig: str, timestamp: int) -> None:
        now = self.clock()
        while self._seen:
            oldest, ts = next(iter(self._seen.items()))
            if ts >= now - self.tolerance:
                break
            del self._seen[oldest]
        self._seen[sig] = float(timestamp)

    def verify(self, request: WebhookRequest) -> None:
        if len(request.body) > self.max_body_bytes:
            raise Unauthorized(
                f"body of {len(request.body)} bytes is over the limit of {self.max_body_bytes}"
            )
        header = request.header(HEADER)
        if header is None:
            raise Unauthorized(f"no {HEADER} header")
        try:
            timestamp, sigs = parse_header(header)
        except ValueError as exc:
            raise Unauthorized(f"malformed {HEADER} header: {exc}") from None
        expected = signature(self._secret, request.body, timestamp)
        match = next((s for s in sigs if hmac.compare_digest(s, expected)), None)
        if match is None:
            raise Unauthorized("signature does not match the body and timestamp")
        age = self.clock() - timestamp
        if abs(age) > self.tolerance:
            raise Unauthorized(
                f"timestamp is {abs(age):.0f} s {'old' if age > 0 else 'in the future'}; "
                f"at most {self.tolerance:.0f} s accepted"
            )
        if match in self._seen:
            raise Unauthorized("replayed request: this signature was already accepted")
        events = decode_events(request.body)
        if self.sources is not None:
            bad = sorted({e.source for e in events} - self.sources)
            if bad:
                raise Unauthorized(f"source(s) {', '.join(bad)} not allowed for this ingress")
        self._remember(match, timestamp)

    def release(self, request: WebhookRequest) -> None:
        """Forget a verified request that could not be stored, so that its retry is accepted."""
        header = request.header(HEADER)
        if header is not None:
            try:
                _, sigs = parse_header(header)
            except ValueError:
                return
            for sig in sigs:
                self._seen.pop(sig, None)

    async def parse(self, request: WebhookRequest) -> list[Event]:
        return decode_events(request.body)
