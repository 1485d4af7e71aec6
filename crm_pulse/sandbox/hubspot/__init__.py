"""A fake HubSpot CRM (v3 objects, search, batch, properties, pipelines, owners) for tests and
the sandbox.

It keeps records in memory and serves the endpoints the connector uses, with the documented
limits (vendor-contracts.md): 200 results per search page, at most 10,000 results per query
(``after`` at or past 10,000: HTTP 400), one sorting rule per search (ties in no promised
order: here newest id first), at most 100 inputs per batch call (and no id twice),
207 with per-record errors, bearer-token auth, rate limits (``rate_max`` requests per
``rate_interval_ms``, ``search_per_second`` for the search API) answered with 429, Retry-After
and the ``X-HubSpot-RateLimit-*`` headers, and search indexing that can lag behind writes
(``index_delay_ms``). Paths take object names (``deals``) or type ids (``0-3``).

:meth:`FakeHubSpot.webhook` builds v3-signed webhook requests the way HubSpot sends them (legacy
``deal.propertyChange`` or generic ``object.propertyChange`` events, merges, deletions), and
:meth:`FakeHubSpot.send_webhooks` POSTs them to a URL in requests of at most 100 events.
"""

from .model import (
    ASSOCIATIONS_BATCH_MAX,
    ASSOCIATIONS_PAGE_MAX,
    BATCH_MAX,
    OBJECT_TYPE_IDS,
    OWNERS_PAGE_MAX,
    SEARCH_PAGE_MAX,
    SEARCH_RESULTS_MAX,
    iso_ms,
)
from .portal import FakeHubSpot
from .search import FILTER_GROUPS_MAX, FILTERS_PER_GROUP_MAX, FILTERS_TOTAL_MAX
from .webhooks import WEBHOOK_EVENTS_MAX, v3_signature

__all__ = [
    "ASSOCIATIONS_BATCH_MAX",
    "ASSOCIATIONS_PAGE_MAX",
    "BATCH_MAX",
    "FILTERS_PER_GROUP_MAX",
    "FILTERS_TOTAL_MAX",
    "FILTER_GROUPS_MAX",
    "OBJECT_TYPE_IDS",
    "OWNERS_PAGE_MAX",
    "SEARCH_PAGE_MAX",
    "SEARCH_RESULTS_MAX",
    "WEBHOOK_EVENTS_MAX",
    "FakeHubSpot",
    "iso_ms",
    "v3_signature",
]
