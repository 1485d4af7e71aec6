"""The ingress signature: HMAC-SHA256 over the timestamp and the body.

A sender computes::

    t   = the current Unix time in seconds
    sig = hex(HMAC-SHA256(secret, f"{t}.".encode() + body))

and sends the header ``X-Crm-Pulse-Signature: t=<t>,v1=<sig>``. Binding the timestamp into the
MAC lets the receiver refuse old requests (``tolerance``), and remembering the signatures it has
accepted within that window refuses a replayed one.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["HEADER", "parse_header", "sign", "signature"]

HEADER = "X-Crm-Pulse-Signature"


def signature(secret: str | bytes, body: bytes, timestamp: int) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers a sender adds to a POST of ``body``."""
    t = int(time.time()) if timestamp is None else timestamp
    return {HEADER: f"t={t},v1={signature(secret, body, t)}", "Content-Type": "application/json"}


_MAX_HEADER = 1024
_HEX = frozenset("0123456789abcdef")
_MAX_SIGNATURES = 8


def parse_header(value: str) -> tuple[int, list[str]]:
    """``t=<int>,v1=<hex>[,v1=<hex>]`` -> (timestamp, signatures); ValueError when malformed.

    Bounded (header length, number of signatures) so a hostile header costs nothing; ``v1``
    must be 64 hex digits; other schemes (``v0=``) are ignored so senders can add them.
    """
    if len(value) > _MAX_HEADER:
        raise ValueError(f"longer than {_MAX_HEADER} characters")
    timestamp: int | None = None
    sigs: list[str] = []
    for part in value.split(","):
        name, sep, item = part.strip().partition("=")
        if not sep:
            raise ValueError("expected t=<unix time>,v1=<hex signature>")
        if name == "t":
            if timestamp is not None:
                raise ValueError("more than one t=")
            if not item.isascii() or not item.isdigit() or len(item) > 12:
                raise ValueError("t is not a Unix time in seconds")
            timestamp = int(item)
        elif name == "v1":
            sig = item.lower()
            if len(sig) != 64 or not _HEX.issuperset(sig):
                raise ValueError("v1 is not 64 hex digits")
            sigs.append(sig)
    if timestamp is None or not sigs:
        raise ValueError("expected t=<unix time>,v1=<hex signature>")
    if len(sigs) > _MAX_SIGNATURES:
        raise ValueError(f"more than {_MAX_SIGNATURES} v1 signatures")
    return timestamp, sigs
