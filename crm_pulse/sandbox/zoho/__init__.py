"""A fake Zoho CRM organization (REST API v8 and the accounts server) for tests and the sandbox.

Faithful to what docs/connect-zoho.md relies on: ``POST /oauth/v2/token`` (refresh-token grant,
form body; refusals are HTTP 200 with an ``error`` key as Zoho's accounts server does) issuing
access tokens that expire after ``expires_in`` seconds, after which the API answers 401
``INVALID_TOKEN``; Get Records (``fields`` required, at most 50; ``sort_by`` id / Created_Time /
Modified_Time; ``per_page`` up to 200; ``page`` only up to 2,000 records, then ``page_token``
up to 100,000; ``If-Modified-Since``; 204 when nothing matches; ``ids``); Get Deleted Records;
Update Records (PUT, at most 100, per-record results, 207 when mixed); the fields API (GET, and
POST creating custom fields up to ``custom_field_limit``; the Deals Stage picklist with forecast
type, category and probability); ``actions/watch`` channels (token of at most 50 characters,
expiry at most a week else one hour) and notification deliveries; API credits per 24 hours
with 429 when spent (:meth:`FakeZoho.exhaust_daily`), forced 429s with ``Retry-After``, and 5xx
or late answers on demand (:meth:`FakeZoho.fail`). API updates are notified to
watching channels like any change (``notify_api_writes``): our own writes come back. Times carry the org's UTC offset
and one-second resolution (a record changed twice in one second gets the next second).
"""

from .model import API_USER, MODULES, REP, STAGES
from .org import FakeZoho

__all__ = ["API_USER", "MODULES", "REP", "STAGES", "FakeZoho"]
