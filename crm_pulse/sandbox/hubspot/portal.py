"""FakeHubSpot: the portal's state with every API family, and the route table."""

from __future__ import annotations

from aiohttp import web

from .. import contracts
from .associations import _Associations
from .limits import _Limits
from .objects import _Objects
from .owners import _Owners
from .schema import _Schema
from .webhooks import _Webhooks


class FakeHubSpot(_Webhooks, _Limits, _Objects, _Associations, _Owners, _Schema):
    """In-memory HubSpot portal. Thread-safe: tests change it while the server serves it.

    Its state and changes are in :mod:`.state`; each API family serves from its own module
    (:mod:`.objects`, :mod:`.associations`, :mod:`.owners`, :mod:`.schema`), behind the gate
    of :mod:`.limits`; :mod:`.webhooks` signs and sends what HubSpot would."""

    # ------------------------------------------------------------ HTTP
    def app(self) -> web.Application:
        app = web.Application(middlewares=[contracts.middleware("hubspot"), self._middleware])
        r = app.router
        r.add_post("/crm/v3/objects/{type}/search", self._search)
        r.add_get("/crm/v3/objects/{type}", self._list)
        r.add_post("/crm/v3/objects/{type}/batch/read", self._batch_read)
        r.add_post("/crm/v3/objects/{type}/batch/update", self._batch_update)
        r.add_post("/crm/v4/associations/{type}/{to}/batch/read", self._associations)
        r.add_get("/crm/v4/objects/{type}/{id}/associations/{to}", self._associations_page)
        r.add_get("/crm/v3/owners", self._owners)
        r.add_get("/crm/v3/owners/", self._owners)  # the SDK's path
        r.add_get("/crm/v3/pipelines/{type}", self._pipelines)
        r.add_get("/crm/v3/properties/{type}", self._properties)
        r.add_post("/crm/v3/properties/{type}", self._create_property)
        r.add_get("/crm/v3/properties/{type}/groups", self._groups)
        r.add_post("/crm/v3/properties/{type}/groups", self._create_group)
        return app
