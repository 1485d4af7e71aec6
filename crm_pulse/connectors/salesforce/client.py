"""The Salesforce client: simple-salesforce over a ``requests`` session, in a worker thread.

The session trusts the configured CA and ignores the environment (``trust_env = False``: on
machines where ``REQUESTS_CA_BUNDLE`` is set it would silently override ``verify``). Log-in is a
session id, or the OAuth client-credentials flow of a connected app. Every answer's
``Sforce-Limit-Info`` is read; once this connector has used its share of the org's daily
requests it pauses (RateLimited) instead of failing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import requests
from simple_salesforce.api import Salesforce

from ...config.models import SalesforceSettings
from ...errors import FatalError, RateLimited
from .errors import DAILY_LIMIT_PAUSE, first_error, translate

__all__ = ["SalesforceClient"]


class SalesforceClient:
    def __init__(self, settings: SalesforceSettings) -> None:
        self.settings = settings
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(settings.ca_cert) if settings.ca_cert is not None else True
        self._local = threading.local()
        self.session.hooks["response"].append(self._remember)
        self.instance = str(settings.instance_url).rstrip("/")
        self.call_options = {"Sforce-Call-Options": f"client={settings.client_id_header}"}
        self.used = 0
        self.limit: int | None = None
        self.ours = 0
        self._sf: Salesforce | None = None

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._local.retry_after = response.headers.get("Retry-After")
        info = response.headers.get("Sforce-Limit-Info", "")
        if info.startswith("api-usage="):
            used, _, total = info.removeprefix("api-usage=").partition("/")
            if used.isdigit() and total.isdigit():
                self.used, self.limit = int(used), int(total)

    def _login(self) -> Salesforce:
        if self._sf is not None:
            return self._sf
        s = self.settings
        if s.session_id is not None:
            token = s.session_id.get_secret_value()
        else:
            assert s.client_id is not None and s.client_secret is not None
            answer = self.session.post(
                f"{self.instance}/services/oauth2/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": s.client_id,
                    "client_secret": s.client_secret.get_secret_value(),
                },
                timeout=s.timeout,
            )
            if answer.status_code != 200:
                code, message = first_error(answer.json() if answer.content else {})
                raise FatalError(
                    f"Salesforce log-in with the connected app failed: {code} {message}"
                )
            token = str(answer.json()["access_token"])
        self._sf = Salesforce(
            session_id=token,
            instance_url=self.instance,
            session=self.session,
            version=s.api_version,
        )
        return self._sf

    def _budget_left(self) -> bool:
        if self.limit is None:
            return True
        return self.ours < self.limit * self.settings.budget_share and self.used < self.limit

    async def call(self, what: str, fn: Callable[[Salesforce], Any]) -> Any:
        """Run ``fn(sf)`` in a thread; errors are translated (the one place)."""
        if not self._budget_left():
            raise RateLimited(
                f"Salesforce: this connector's share of the daily API limit is used up before {what}",
                DAILY_LIMIT_PAUSE,
            )

        def run() -> Any:
            self._local.retry_after = None
            try:
                return fn(self._login())
            except Exception as exc:
                raw = getattr(self._local, "retry_after", None)
                try:
                    wait = float(raw) if raw is not None else None
                except ValueError:
                    wait = None
                raise translate(exc, what, wait) from None

        self.ours += 1
        return await asyncio.to_thread(run)

    async def query(self, soql: str, *, include_deleted: bool = False) -> dict[str, Any]:
        return dict(
            await self.call("query", lambda sf: sf.query(soql, include_deleted=include_deleted))
        )

    async def query_more(self, next_url: str) -> dict[str, Any]:
        return dict(
            await self.call("query", lambda sf: sf.query_more(next_url, identifier_is_url=True))
        )

    async def describe(self, sobject: str) -> dict[str, Any]:
        return dict(
            await self.call(
                f"describe {sobject}", lambda sf: sf.restful(f"sobjects/{sobject}/describe")
            )
        )

    async def update_collection(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        body = {"allOrNone": False, "records": records}
        result = await self.call(
            "sObject Collections update",
            lambda sf: sf.restful(
                "composite/sobjects", method="PATCH", json=body, headers=self.call_options
            ),
        )
        return list(result or [])

    async def create_custom_field(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(
            await self.call(
                "Tooling CustomField create",
                lambda sf: sf.toolingexecute("sobjects/CustomField", method="POST", data=body),
            )
            or {}
        )

    def close(self) -> None:
        self.session.close()
