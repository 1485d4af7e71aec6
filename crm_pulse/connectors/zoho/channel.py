"""Keeping the Notification API channel open (``POST /crm/v8/actions/watch``).

A channel watches ``<Module>.all`` for every module read, posts to ``notify_url`` and carries
``token``, which Zoho sends back in every notification. Channels lapse at ``channel_expiry``
(at most a week from now; one hour if not given), so :meth:`ChannelKeeper.ensure` -- called at
the start of every poll and backfill -- enables the channel again (the same call renews it)
when less than a quarter of ``channel_lifetime`` is left. A failure to renew is logged and
tried again at the next poll; polling goes on either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from ...errors import CrmPulseError, FatalError
from .client import ZohoClient

__all__ = ["ChannelKeeper"]

log = logging.getLogger("crm_pulse.zoho")


class ChannelKeeper:
    def __init__(
        self,
        client: ZohoClient,
        *,
        channel_id: int,
        modules: Sequence[str],
        notify_url: str,
        token: str,
        lifetime: float,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.channel_id = channel_id
        self.events = [f"{m}.all" for m in modules]
        self.notify_url = notify_url
        self._token = token
        self.lifetime = lifetime
        self.wall = wall
        self.expires_at: float | None = None
        self.renewals = 0

    def __repr__(self) -> str:
        return f"ChannelKeeper(channel_id={self.channel_id}, expires_at={self.expires_at})"

    def due(self) -> bool:
        return self.expires_at is None or self.expires_at - self.wall() < self.lifetime / 4

    async def ensure(self) -> bool:
        """Enable or renew the channel if it is due; True if it is open afterwards."""
        if not self.due():
            return True
        expires = self.wall() + self.lifetime
        expiry = datetime.fromtimestamp(int(expires), UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        try:
            answer = await self.client.watch(
                self.channel_id, self.events, self.notify_url, self._token, expiry
            )
        except FatalError:
            raise
        except CrmPulseError as exc:
            log.warning("Zoho notification channel not renewed", extra={"reason": str(exc)})
            return False
        results = answer.get("watch") or []
        failed = [r for r in results if isinstance(r, dict) and r.get("status") != "success"]
        if failed or not results:
            reason = failed[0].get("message") if failed else "empty answer"
            log.warning("Zoho notification channel refused", extra={"reason": str(reason)})
            return False
        self.expires_at = expires
        self.renewals += 1
        return True
