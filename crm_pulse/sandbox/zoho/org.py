"""FakeZoho: the org with every API family, and the route table."""

from __future__ import annotations

from aiohttp import web

from .fields import _Fields
from .limits import _Limits
from .oauth import _OAuth
from .records import _Records
from .users import _Users
from .writes import _Writes


class FakeZoho(_Writes, _Limits, _OAuth, _Records, _Fields, _Users):
    """An in-memory Zoho CRM org. Thread-safe: tests change it while the server serves it.

    Its state and changes are in :mod:`.state`; each API family serves from its own module
    (:mod:`.oauth`, :mod:`.records`, :mod:`.writes`, :mod:`.fields`, :mod:`.users`) behind the
    gate of :mod:`.limits`; :mod:`.webhooks` keeps watch channels and sends notifications."""

    # ------------------------------------------------------------ HTTP
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_post("/oauth/v2/token", self._token)
        r.add_get("/crm/v8/settings/fields", self._fields)
        r.add_post("/crm/v8/settings/fields", self._create_field)
        r.add_post("/crm/v8/actions/watch", self._watch)
        r.add_get("/crm/v8/users", self._users)
        r.add_get("/crm/v8/{module}/deleted", self._deleted)
        r.add_get("/crm/v8/{module}", self._list)
        r.add_put("/crm/v8/{module}", self._update)
        return app
