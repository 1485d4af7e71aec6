"""The receiver of the generic ingress: verify signed POSTs of canonical events.

``verify`` does everything that decides whether a request is accepted, so that the HTTP server
stores only requests that :meth:`EventsReceiver.parse` will turn into events without error:
size, signature header, timestamp within the tolerance, HMAC (constant-time comparison),
replay, allowed sources (all raising :class:`Unauthorized`), then the events themselves
(:class:`InvalidEvents`, a :class:`DataError` listing every bad item). Messages are built from
names and numbers, never from the secret or the signature.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Sequence

from pydantic import SecretStr

from ...errors import Unauthorized
from ...metrics.events import Event
from ..protocols import WebhookRequest
from .parsing import decode_items, validate_items
from .replay import ReplayGuard
from .signing import SIGNATURE_HEADER, parse_signature_header

__all__ = ["DEFAULT_PATH", "EventsReceiver"]

DEFAULT_PATH = "/events"
_PARSED_REQUESTS = 256
_PARSED_EVENTS = 50_000


class EventsReceiver:
    """Verifies and parses POSTs of canonical events signed with the shared secret."""

    verify_in_thread = True
    """``verify`` is thread-safe (the replay memory has a lock); the server may run it in a
    worker thread for large bodies."""

    def __init__(
        self,
        secret: SecretStr | str,
        *,
        path: str = DEFAULT_PATH,
        tolerance: float = 300.0,
        max_body_bytes: int = 4 * 1024 * 1024,
        sources: Sequence[str] | None = None,
        replay_capacity: int = 200_000,
    ) -> None:
        raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        if not raw:
            raise ValueError("the events ingress needs a non-empty secret")
        self._key = raw.encode()
        self.path = path
        self.tolerance = tolerance
        self.max_body_bytes = max_body_bytes
        self.sources = frozenset(sources) if sources is not None else None
        self._replay = ReplayGuard(tolerance, replay_capacity)
        # events of requests verified but not parsed yet, by their MAC (which binds the body)
        self._parsed: OrderedDict[bytes, list[Event]] = OrderedDict()
        self._parsed_lock = threading.Lock()
        self._parsed_events = 0

    def __repr__(self) -> str:
        return f"EventsReceiver(path={self.path!r})"

    def verify(self, request: WebhookRequest) -> None:
        if len(request.body) > self.max_body_bytes:
            raise Unauthorized(
                f"body of {len(request.body)} bytes is larger than the limit of "
                f"{self.max_body_bytes} bytes"
            )
        header = request.header(SIGNATURE_HEADER)
        if header is None:
            raise Unauthorized(f"missing {SIGNATURE_HEADER} header")
        try:
            parsed = parse_signature_header(header)
        except ValueError as exc:
            raise Unauthorized(f"malformed {SIGNATURE_HEADER} header: {exc}") from None
        now = request.received_at_ms / 1000
        skew = now - parsed.timestamp
        if skew > self.tolerance:
            raise Unauthorized(
                f"stale request: signed {skew:.0f} s ago, tolerance {self.tolerance:g} s"
            )
        if -skew > self.tolerance:
            raise Unauthorized(
                f"timestamp {-skew:.0f} s in the future, tolerance {self.tolerance:g} s"
            )
        expected = hmac.new(
            self._key, f"{parsed.timestamp}.".encode() + request.body, hashlib.sha256
        ).hexdigest()
        if not any(hmac.compare_digest(expected, s) for s in parsed.signatures):
            raise Unauthorized("signature does not match")
        items = decode_items(request.body, request.header("Content-Type"))
        if self.sources is not None:
            for item in items:
                source = item.data.get("source") if isinstance(item.data, dict) else None
                if isinstance(source, str) and source not in self.sources:
                    allowed = ", ".join(sorted(self.sources)) or "none"
                    raise Unauthorized(
                        f"item [{item.index}]: source {source[:60]!r} is not allowed here "
                        f"(allowed: {allowed})"
                    )
        events = validate_items(items)
        digest = bytes.fromhex(expected)
        refused = self._replay.check_and_remember(digest, parsed.timestamp, now)
        if refused:
            raise Unauthorized(refused)
        if len(events) > _PARSED_EVENTS:
            return
        with self._parsed_lock:
            self._parsed[digest] = events
            self._parsed_events += len(events)
            while len(self._parsed) > _PARSED_REQUESTS or self._parsed_events > _PARSED_EVENTS:
                self._parsed_events -= len(self._parsed.popitem(last=False)[1])

    async def parse(self, request: WebhookRequest) -> list[Event]:
        """The events of a request that passed :meth:`verify` (no check of the signature).

        Right after ``verify`` the events it validated are returned without validating them
        again; a request read back from the log later (after a restart) is parsed anew.
        """
        digest = self._digest(request)
        if digest is not None:
            with self._parsed_lock:
                cached = self._parsed.pop(digest, None)
                if cached is not None:
                    self._parsed_events -= len(cached)
            if cached is not None:
                return cached
        return validate_items(decode_items(request.body, request.header("Content-Type")))

    def _digest(self, request: WebhookRequest) -> bytes | None:
        header = request.header(SIGNATURE_HEADER)
        if header is None:
            return None
        try:
            parsed = parse_signature_header(header)
        except ValueError:
            return None
        return hmac.new(
            self._key, f"{parsed.timestamp}.".encode() + request.body, hashlib.sha256
        ).digest()

    def forget(self, request: WebhookRequest) -> None:
        """The request was verified but not stored: let the sender's retry through."""
        digest = self._digest(request)
        if digest is not None:
            self._replay.forget(digest)
            with self._parsed_lock:
                dropped = self._parsed.pop(digest, None)
                if dropped is not None:
                    self._parsed_events -= len(dropped)
