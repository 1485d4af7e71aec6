"""A fake monday.com account (GraphQL API v2, monday CRM boards) for tests and the sandbox.

One endpoint (``POST /v2``) reads GraphQL documents with :mod:`crm_pulse.sandbox.graphql` and
answers the operations crm-pulse uses: ``boards (ids) { id name columns { id title type
settings_str } items_page (limit, query_params) { cursor items {...} } }``,
``next_items_page (cursor, limit)``, ``items (ids)`` (archived and deleted items included, with
their ``state``),
``complexity { before after query reset_in_x_seconds }``, and the mutations
``change_multiple_column_values``, ``create_column`` and ``create_webhook`` (which first POSTs
the URL challenge and keeps the webhook only if it is echoed).

As monday documents: items come 1..500 per page; a cursor is valid for 60 minutes after the
first request (then ``CursorExpiredError``); every call costs complexity points against a budget
per minute; the token goes in ``Authorization`` and the version in ``API-Version`` (both
recorded).

Failures on demand, in the shapes monday documents (docs/connect-monday.md names the pages),
chosen by the request's ``API-Version`` where monday changed them:

* complexity budget (:meth:`FakeMonday.exhaust_complexity`, or a budget really spent): before
  2025-01 the old top-level ``ComplexityException`` body ("... reset in N seconds"); 2025-01 and
  2025-04 ``COMPLEXITY_BUDGET_EXHAUSTED`` with ``retry_in_seconds`` and the budget fields; from
  2025-07 only ``code`` and ``retry_in_seconds``; all inside an HTTP 200, as application errors;
* the minute limit (:meth:`~FakeMonday.rate_limit`): HTTP 429 with ``Retry-After``;
* the daily call limit (:meth:`~FakeMonday.exhaust_daily`): ``DAILY_LIMIT_EXCEEDED`` until the
  next midnight UTC (or :meth:`~FakeMonday.reset_daily`), HTTP 429 with ``Retry-After``;
* 5xx and slow answers (:meth:`~FakeMonday.fail`): the documented 500 body
  ``{"error_message": "Internal server error", "status_code": 500}``;
* expired cursors (:meth:`~FakeMonday.expire_cursors`): ``CursorException`` "CursorExpiredError:
  ..." (top-level before 2025-01, in ``errors`` after).

Every answer passes :mod:`crm_pulse.sandbox.contracts` (monday's GraphQL types) when the checks
are on. Column values are kept in monday's raw JSON forms (status ``{"index", "changed_at"}``,
people ``{"personsAndTeams"}``, date ``{"date", "time"}``, board_relation
``{"linkedPulseIds"}``...).
``updated_at`` has one-second resolution; an item changed twice in one second gets the next
second, so versions still grow.

Boards are made from monday CRM's templates (:data:`TEMPLATES`) or by hand. Webhook deliveries
(:meth:`FakeMonday.webhook`, :meth:`FakeMonday.deliver`) carry the event envelope monday sends
and, when the fake has a signing secret, a JWT in ``Authorization`` signed with it (``aud`` the
URL, ``exp`` five minutes on).
"""

from .endpoint import FakeMonday
from .model import BUDGET, CURRENT_VERSION, CURSOR_EXPIRED, CURSOR_TTL, TEMPLATES

__all__ = ["BUDGET", "CURRENT_VERSION", "CURSOR_EXPIRED", "CURSOR_TTL", "TEMPLATES", "FakeMonday"]
