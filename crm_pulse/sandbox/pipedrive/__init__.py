"""A fake Pipedrive company account (API v2, field definitions v2 and v1) for tests and the sandbox.

Records live in memory; update times have Pipedrive's one-second resolution (a record changed
twice in one second gets the next second, so its versions still grow). Custom fields have
40-character hash keys per account and typed values: a ``monetary`` field holds
``{"value", "currency"}`` and numbers are never given as strings (API v2 refuses them).

Limits as Pipedrive documents them (docs/connect-pipedrive.md, "Facts"): a **burst** limit of
requests per token in a rolling 2-second window, by plan (``x-ratelimit-limit``), and a
**daily token budget** per company (30,000 x plan multiplier x seats) from which each call
spends its token cost (API v2: list 10, get 1, POST/PATCH 5, search 20). Over either, the
answer is 429 (burst: with ``Retry-After``). ``status=deleted`` lists only deals deleted in the
last 30 days, from the deals list and from the archived list alike. Faults on demand:
:meth:`FakePipedrive.rate_limit`, :meth:`~FakePipedrive.exhaust_daily`, :meth:`~FakePipedrive.fail`.

:meth:`FakePipedrive.webhook` builds webhooks v2 deliveries (HTTP Basic credentials; ``data``
carries only the essential fields, as Pipedrive's do) and :meth:`FakePipedrive.deliver` POSTs
them to a URL with Pipedrive's retry schedule.
"""

from .account import FakePipedrive
from .model import BASE_TOKENS, DELETED_VISIBLE_DAYS, FIELDS_PAGE_DEFAULT, FIELDS_PAGE_MAX, PLANS

__all__ = [
    "BASE_TOKENS",
    "DELETED_VISIBLE_DAYS",
    "FIELDS_PAGE_DEFAULT",
    "FIELDS_PAGE_MAX",
    "PLANS",
    "FakePipedrive",
]
