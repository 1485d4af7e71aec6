"""TinyCRM's REST API over httpx; its errors become crm-pulse errors here, and only here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from crm_pulse.connectors import (
    Backoff,
    CrmPulseError,
    FatalError,
    RateLimited,
    RetriableError,
    SkippableError,
    retrying,
    wait_from_headers,
)

from .settings import TinyCrmSettings


def translate(response: httpx.Response, what: str) -> CrmPulseError | None:
    """None for a success, else the crm-pulse error this answer means."""
    status = response.status_code
    if status < 400:
        return None
    if status == 429:
        return RateLimited(f"TinyCRM rate limit during {what}", wait_from_headers(response.headers))
    if status in (401, 403):
        return FatalError(f"TinyCRM refused the API key during {what} ({status})")
    if status >= 500:
        return RetriableError(f"TinyCRM {status} during {what}")
    return SkippableError(f"TinyCRM {status} during {what}: {response.text[:200]}")


class TinyCrmClient:
    def __init__(self, settings: TinyCrmSettings, *, attempts: int = 4) -> None:
        verify: Any = str(settings.ca_cert) if settings.ca_cert is not None else True
        self.http = httpx.AsyncClient(
            base_url=settings.base_url,
            headers={"Authorization": f"Bearer {settings.api_key.get_secret_value()}"},
            timeout=settings.timeout,
            verify=verify,
            trust_env=False,
        )
        self.backoff = Backoff(initial=1.0, maximum=30.0, attempts=attempts, max_wait=30.0)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        retry: bool = True,
    ) -> Any:
        what = f"{method} {path}"

        async def once() -> Any:
            try:
                response = await self.http.request(method, path, params=params, json=json)
            except httpx.HTTPError as exc:
                raise RetriableError(
                    f"TinyCRM unreachable during {what}: {type(exc).__name__}"
                ) from None
            error = translate(response, what)
            if error is not None:
                raise error
            return response.json()

        def worth_retrying(error: CrmPulseError) -> bool:
            # a write's 429 goes back to crm-pulse's outbox, which schedules it
            return retry and isinstance(error, RetriableError)

        return await retrying(f"TinyCRM {what}", once, self.backoff, retry_on=worth_retrying)

    async def aclose(self) -> None:
        await self.http.aclose()
