"""FakePipedrive: the company account with every API family, and the route table."""

from __future__ import annotations

from aiohttp import web

from .. import contracts
from .fields import _Fields
from .limits import _Limits
from .records import _Records
from .users import _Users
from .webhooks import _Webhooks


class FakePipedrive(_Webhooks, _Limits, _Records, _Users, _Fields):
    """An in-memory Pipedrive company account. Thread-safe: tests change it while the server
    serves it.

    Its state and changes are in :mod:`.state`; each API family serves from its own module
    (:mod:`.records`, :mod:`.users`, :mod:`.fields`) behind the gate of :mod:`.limits`;
    :mod:`.webhooks` builds and delivers webhooks v2."""

    # ------------------------------------------------------------ HTTP
    def app(self) -> web.Application:
        app = web.Application(middlewares=[contracts.middleware("pipedrive"), self._middleware])
        r = app.router
        r.add_get("/api/v2/deals/archived", self._archived)
        r.add_get("/api/v2/{singular}Fields", self._fields_v2)
        r.add_post("/api/v2/{singular}Fields", self._create_field_v2)
        r.add_get("/api/v2/{entity}", self._list)
        r.add_get("/api/v2/{entity}/{id}", self._get)
        r.add_patch("/api/v2/{entity}/{id}", self._patch)
        r.add_get("/v1/users/me", self._me)
        r.add_get("/v1/users", self._users)
        r.add_get("/v1/{singular}Fields", self._fields_v1)
        r.add_post("/v1/{singular}Fields", self._create_field_v1)
        return app
