"""The generic ingress receiver: canonical events POSTed as JSON, signed (see :mod:`.signing`).

The body is one event object, an array of them, or JSON lines. :meth:`EventsReceiver.verify`
authenticates (signature, timestamp within ``tolerance``, not a replay, size) and then validates
every event, so a bad request is refused with the reason before anything is stored:
:class:`~crm_pulse.errors.Unauthorized` (401) or :class:`~.parsing.InvalidEvents`, a
:class:`~crm_pulse.errors.DataError` (400) naming every bad item by index and field.

A replayed request (the same signature and body within the tolerance window) is not refused
here: the runtime's inbox remembers every stored request durably for longer than the window and
answers an exact repeat 200 as a duplicate without storing it (senders retry after timeouts;
a restart does not forget). After the window the timestamp alone refuses it. (``parse``
validates again rather than keeping the events ``verify`` built: measured, holding tens of
thousands of events alive costs more in garbage collection than it saves.)
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Sequence

from ...errors import Unauthorized
from ...metrics.events import Event
from ..protocols import ReceiverBase, WebhookRequest
from .parsing import parse_events
from .signing import HEADER, parse_header

__all__ = ["EventsReceiver", "decode_events"]


def decode_events(body: bytes, content_type: str | None = None) -> list[Event]:
    """Parse a body into events; :class:`InvalidEvents` lists every bad item (index, field)."""
    return parse_events(body, content_type)


class EventsReceiver(ReceiverBase):
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
        self.replay_window = max(600.0, 2 * tolerance)
        self.max_body_bytes: int = max_body_bytes
        self.sources = frozenset(sources) if sources is not None else None
        self.clock = clock

    def __repr__(self) -> str:
        return f"EventsReceiver(path={self.path!r})"

    def _mac(self, timestamp: int, body: bytes) -> bytes:
        return hmac.new(self._secret, f"{timestamp}.".encode() + body, hashlib.sha256).digest()

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
        mac = self._mac(timestamp, request.body)
        expected = mac.hex()
        if not any(hmac.compare_digest(s, expected) for s in sigs):
            raise Unauthorized("signature does not match the body and timestamp")
        now = self.clock()
        age = now - timestamp
        if abs(age) > self.tolerance:
            raise Unauthorized(
                f"timestamp is {abs(age):.0f} s {'old' if age > 0 else 'in the future'}; "
                f"at most {self.tolerance:.0f} s accepted"
            )
        events = decode_events(request.body, request.header("Content-Type"))
        if self.sources is not None:
            bad = sorted({e.source for e in events} - self.sources)
            if bad:
                raise Unauthorized(f"source(s) {', '.join(bad)} not allowed for this ingress")

    def release(self, request: WebhookRequest) -> None:
        """Nothing to forget: replays are recognised by the inbox once a request is stored."""

    async def parse(self, request: WebhookRequest) -> list[Event]:
        """The events of a request that passed :meth:`verify`."""
        return decode_events(request.body, request.header("Content-Type"))
