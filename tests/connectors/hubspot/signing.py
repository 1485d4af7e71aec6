"""HubSpot's v3 request signature, written here from HubSpot's published rule only.

The tests sign with this, not with the receiver's code nor the simulator's, so that a mistake
shared by both cannot pass unnoticed. The rule (HubSpot, "Validating requests", v3):
``base64(HMAC-SHA256(client secret, METHOD + URI + body + timestamp))`` where the URI is the
full URL with the escapes ``%3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B`` decoded and
every other byte left as sent, and the timestamp is ``X-HubSpot-Request-Timestamp``
(milliseconds). Written differently on purpose: a regular expression over the hex codes, not a
table of replacements.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_ESCAPES = r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)"


def hubspot_uri(url: str, *, lower_case: bool = True) -> str:
    """The URL as signed. HubSpot's page lists the escapes in upper case; whether it also
    decodes ``%3a`` is not said, so both readings can be produced (``lower_case``)."""
    flags = re.IGNORECASE if lower_case else 0
    return re.sub(_ESCAPES, lambda m: bytes.fromhex(m.group(1)).decode("ascii"), url, flags=flags)


def sign_v3(
    secret: str, method: str, url: str, body: bytes, timestamp_ms: int, *, lower_case: bool = True
) -> str:
    uri = hubspot_uri(url, lower_case=lower_case)
    source = b"".join((method.encode("ascii"), uri.encode("utf-8"), body, b"%d" % timestamp_ms))
    digest = hmac.new(secret.encode("utf-8"), source, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def headers_v3(
    secret: str, method: str, url: str, body: bytes, timestamp_ms: int
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": sign_v3(secret, method, url, body, timestamp_ms),
        "X-HubSpot-Request-Timestamp": str(timestamp_ms),
    }
