"""FakeMonday: the account served at its one endpoint, ``POST /v2`` (auth, limits and faults,
then each field of the GraphQL document)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .. import contracts
from ..graphql import GraphQLError, parse, project
from .errors import _complexity_error, _error, _Refusal
from .model import (
    _VERSION,
    CURRENT_VERSION,
)
from .mutations import _Mutations


class FakeMonday(_Mutations):
    """An in-memory monday.com account. Thread-safe: tests change it while the server serves it.

    Its state and changes are in :mod:`.state`; GraphQL fields are answered by :mod:`.queries`
    and :mod:`.mutations`; :mod:`.webhooks` builds and delivers webhooks."""

    # ------------------------------------------------------------ HTTP
    def app(self) -> web.Application:
        app = web.Application(middlewares=[contracts.middleware("monday")])
        app.router.add_post("/v2", self._graphql)
        return app

    async def _graphql(self, request: web.Request) -> web.Response:
        version = request.headers.get("API-Version") or CURRENT_VERSION
        _VERSION.set(version)
        with self._lock:
            self.versions.append(request.headers.get("API-Version"))
            forced = self._forced.pop(0) if self._forced else None
            fault = self.faults.pop(0) if self.faults else None
            now = self.clock()
            if self.daily_until is not None and now >= self.daily_until:
                self.daily_until = None  # a new day (UTC)
            daily = self.daily_until
        if request.headers.get("Authorization", "").removeprefix("Bearer ") != self.token:
            return self._answer(
                401, _error("Not Authenticated", "UserUnauthorizedException", status_code=401)
            )
        if daily is not None:
            return self._answer(
                429,
                _error("Daily limit exceeded", "DAILY_LIMIT_EXCEEDED", status_code=429),
                {"Retry-After": str(max(1, math.ceil(daily - now)))},
            )
        if forced is not None:
            kind, wait = forced
            if kind == "rate":  # the minute limit: HTTP 429 and Retry-After
                return self._answer(
                    429,
                    _error("Rate Limit Exceeded", "RATE_LIMIT_EXCEEDED", status_code=429),
                    {"Retry-After": f"{wait:g}"},
                )
            whole = max(1, math.ceil(wait))
            return self._answer(200, _complexity_error(whole, 1000, 0, self.budget))
        if fault is not None:
            status, delay = fault
            if delay:
                await asyncio.sleep(delay)
            if status:
                return self._answer(
                    status, {"error_message": "Internal server error", "status_code": status}
                )
        try:
            body = await request.json()
        except ValueError:
            return self._answer(400, _error("Invalid JSON body", "JsonParseException"))
        if not isinstance(body, dict):
            return self._answer(400, _error("Invalid body", "JsonParseException"))
        variables = body.get("variables") or {}
        try:
            op = parse(
                str(body.get("query") or ""), variables if isinstance(variables, dict) else {}
            )
        except GraphQLError as exc:
            return self._answer(200, _error(str(exc), "GRAPHQL_PARSE_ERROR"))
        data: dict[str, Any] = {}
        try:
            for f in op.fields:
                with self._lock:
                    self.calls.append(f.name)
                if op.kind == "mutation":
                    value = await self._mutation(f.name, f.args)
                else:
                    with self._lock:
                        value = self._query(f.name, f.args)
                with self._lock:
                    data[f.alias] = project(value, f.selections)
        except _Refusal as refusal:
            return self._answer(refusal.status, refusal.body, refusal.headers)
        except GraphQLError as exc:
            return self._answer(200, _error(str(exc), "GRAPHQL_VALIDATION_FAILED"))
        return web.json_response({"data": data, "account_id": self.account_id})

    def _answer(
        self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> web.Response:
        """An error answer, with the account id monday adds to its bodies."""
        return web.json_response(
            {**body, "account_id": self.account_id}, status=status, headers=dict(headers or {})
        )
