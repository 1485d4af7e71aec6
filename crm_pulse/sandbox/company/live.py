"""Live changes: one change at a time in a CRM, announced to the runtime as that CRM would."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp

from ..hubspot import iso_ms
from .model import (
    HUBSPOT_REPS,
)
from .year import _Year


class Sandbox(_Year):
    """The three fakes, seeded; serve them with :meth:`start` and stop with :meth:`stop`."""

    async def _zoho_change(self, session: aiohttp.ClientSession, runtime_url: str) -> None:
        """An open Zoho deal closes; Zoho notifies the channel with its id."""
        rid = self.zoho_open.pop(self.rng.randrange(len(self.zoho_open)))
        stage = self.rng.choice(["Closed Won", "Closed Won", "Closed Lost"])
        today = time.strftime("%Y-%m-%d", time.gmtime())
        self.zoho.update("Deals", rid, {"Stage": stage, "Closing_Date": today})
        headers, body = self.zoho.notification("Deals", "update", [rid])
        try:
            async with session.post(
                f"{runtime_url}/webhooks/zoho", data=body, headers=headers
            ) as response:
                ok = response.status == 200
        except aiohttp.ClientError:
            ok = False
        if ok:
            self.stats.webhooks_sent += 1
        else:
            self.stats.webhooks_refused += 1

    # ------------------------------------------------------------ live changes
    async def live_change(self, session: aiohttp.ClientSession, runtime_url: str) -> None:
        """One change in a CRM, announced to the runtime as that CRM would."""
        rng = self.rng
        self.stats.changes += 1
        others = {"hubspot", "pipedrive"} & self.live
        if "zoho" in self.live and self.zoho_open and rng.random() < (0.5 if not others else 0.2):
            await self._zoho_change(session, runtime_url)
            return
        if "monday" in self.live and self.mo_open and (rng.random() < 0.25 or not others):
            await self._monday_change(session, runtime_url)
            return
        if not others and "zoho" in self.live and self.zoho_open:
            await self._zoho_change(session, runtime_url)
            return
        if not others or ("hubspot" not in others and not self.pd_open):
            return  # nothing left to change live (Salesforce changes come from polling only)
        if "pipedrive" not in others or (
            "hubspot" in others and (rng.random() < 0.7 or not self.pd_open)
        ):
            if self.open_deals and rng.random() < 0.6:
                rid = self.open_deals.pop(rng.randrange(len(self.open_deals)))
                stage = rng.choice(["closedwon", "closedwon", "closedlost"])
                self.hubspot.update(  # a rep closes it
                    "deals",
                    rid,
                    {"dealstage": stage, "closedate": iso_ms(int(time.time() * 1000))},
                    by_user=self._user(rng.choice(HUBSPOT_REPS)),
                )
            else:
                rid = self.hubspot.create(
                    "deals",
                    {
                        "dealname": "New",
                        "amount": str(rng.randrange(20, 300) * 100),
                        "dealstage": "appointmentscheduled",
                        "pipeline": "default",
                        "dealtype": rng.choice(["newbusiness", "existingbusiness"]),
                        "hubspot_owner_id": rng.choice(HUBSPOT_REPS),
                        "hs_primary_associated_company": rng.choice(self.companies[1:]),
                    },
                )
                self.open_deals.append(rid)
            url = f"{runtime_url}/webhooks/hubspot"
            headers, body = self.hubspot.webhook(
                url, [self.hubspot.change_event("deals", rid, propertyName="dealstage")]
            )
        else:
            rid = self.pd_open.pop(rng.randrange(len(self.pd_open)))
            status = rng.choice(["won", "lost"])
            self.pipedrive.update(
                "deals",
                rid,
                {
                    "status": status,
                    f"{status}_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                },
            )
            url = f"{runtime_url}/webhooks/pipedrive"
            headers, body = self.pipedrive.webhook("change", "deals", rid)
        try:
            async with session.post(url, data=body, headers=headers) as response:
                if response.status == 200:
                    self.stats.webhooks_sent += 1
                else:
                    self.stats.webhooks_refused += 1
        except aiohttp.ClientError:
            self.stats.webhooks_refused += 1

    async def _monday_change(self, session: aiohttp.ClientSession, runtime_url: str) -> None:
        """An open monday deal is won or lost; monday announces it with a JWT-signed webhook."""
        rid = self.mo_open.pop(self.rng.randrange(len(self.mo_open)))
        self.monday.update_item(rid, {"Deal stage": self.rng.choice(["Won", "Won", "Lost"])})
        status = await self.monday.deliver(
            f"{runtime_url}/webhooks/monday",
            "update_column_value",
            rid,
            column_title="Deal stage",
            audience=self.monday_hook or None,
        )
        if status == 200:
            self.stats.webhooks_sent += 1
        else:
            self.stats.webhooks_refused += 1

    async def trickle(self, runtime_url: str, stop: asyncio.Event, every: float = 0.4) -> None:
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                await self.live_change(session, runtime_url)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=every)
