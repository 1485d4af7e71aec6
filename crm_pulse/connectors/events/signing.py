"""The signature scheme of the generic ingress, for senders, tests and benchmarks.

A sender signs ``f"{timestamp}.".encode() + body`` with HMAC-SHA256 under the shared secret and
sends ``X-Crm-Pulse-Signature: t=<unix seconds>,v1=<hex digest>``. Binding the timestamp into
the MAC lets the receiver refuse stale requests, and remembering accepted signatures within the
tolerance window refuses replays. Several ``v1=`` entries may be sent (key rotation); one
matching is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from pydantic import SecretStr

__all__ = [
    "SIGNATURE_HEADER",
    "SignatureHeader",
    "compute_signature",
    "parse_signature_header",
    "sign",
]

SIGNATURE_HEADER = "X-Crm-Pulse-Signature"
_MAX_HEADER = 1024
_MAX_SIGNATURES = 8


def _key(secret: str | bytes | SecretStr) -> bytes:
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    return secret.encode() if isinstance(secret, str) else secret


def compute_signature(secret: str | bytes | SecretStr, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>." + body``."""
    return hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(
    secret: str | bytes | SecretStr,
    body: bytes,
    timestamp: int | None = None,
    *,
    content_type: str = "application/json",
) -> dict[str, str]:
    """Headers for a request carrying ``body``: the signature and the content type."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        SIGNATURE_HEADER: f"t={ts},v1={compute_signature(secret, body, ts)}",
        "Content-Type": content_type,
    }


@dataclass(frozen=True)
class SignatureHeader:
    timestamp: int
    signatures: tuple[str, ...]


def parse_signature_header(value: str) -> SignatureHeader:
    """Split the header; ``ValueError`` says what is wrong (the value is never echoed)."""
    if len(value) > _MAX_HEADER:
        raise ValueError(f"longer than {_MAX_HEADER} characters")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep:
            raise ValueError("expected 't=<unix seconds>,v1=<hex>'")
        if key == "t":
            if timestamp is not None:
                raise ValueError("more than one t=")
            if not item.isascii() or not item.isdigit() or len(item) > 12:
                raise ValueError("t= is not a unix time in seconds")
            timestamp = int(item)
        elif key == "v1":
            sig = item.lower()
            if len(sig) != 64 or any(c not in "0123456789abcdef" for c in sig):
                raise ValueError("v1= is not 64 hex digits")
            signatures.append(sig)
        # other schemes (v0, v2, ...) are ignored so that senders can add them
    if timestamp is None:
        raise ValueError("no t= timestamp")
    if not signatures:
        raise ValueError("no v1= signature")
    if len(signatures) > _MAX_SIGNATURES:
        raise ValueError(f"more than {_MAX_SIGNATURES} v1= signatures")
    return SignatureHeader(timestamp, tuple(signatures))
