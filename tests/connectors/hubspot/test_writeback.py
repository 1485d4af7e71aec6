"""HubSpot write-back: what HubSpot did not confirm is never reported written; provisioning."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from crm_pulse.config import load_config_text
from crm_pulse.connectors.hubspot.provisioner import property_body
from crm_pulse.connectors.protocols import FieldSpec, FieldWrite
from crm_pulse.errors import ConfigError, RateLimited
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime

from .harness import FIELD, TOKEN, make_harness


async def test_a_207_whose_errors_name_no_record_fails_the_unconfirmed_ones() -> None:
    async with make_harness() as h:
        ids = h.seed_deals(2)
        h.fake.errors_without_ids = True
        writes = [FieldWrite("hubspot", "deals", i, FIELD, 3.0) for i in [ids[0], "999", ids[1]]]
        results = await h.connector.sink.write(writes)
        assert [r.ok for r in results] == [True, False, True]
        assert "OBJECT_NOT_FOUND" in results[1].reason and not results[1].retriable


async def test_a_property_that_does_not_exist_fails_each_write_of_the_call() -> None:
    async with make_harness() as h:
        ids = h.seed_deals(3)
        writes = [FieldWrite("hubspot", "deals", i, "crm_pulse_nope", 1.0) for i in ids]
        writes.append(FieldWrite("hubspot", "companies", "1", "crm_pulse_nope", 1.0))
        results = await h.connector.sink.write(writes)
        assert [r.ok for r in results] == [False] * 4
        assert all("does not exist" in r.reason and not r.retriable for r in results)


async def test_values_are_sent_as_hubspot_strings_and_none_clears() -> None:
    async with make_harness() as h:
        (deal,) = h.seed_deals(1)
        sink = h.connector.sink
        await sink.write([FieldWrite("hubspot", "deals", deal, FIELD, 0.125)])
        assert h.fake.value("deals", deal, FIELD) == "0.125"
        await sink.write([FieldWrite("hubspot", "deals", deal, FIELD, 1200.0)])
        assert h.fake.value("deals", deal, FIELD) == "1200"
        await sink.write([FieldWrite("hubspot", "deals", deal, FIELD, None)])
        assert h.fake.value("deals", deal, FIELD) == ""


async def test_a_429_on_a_write_is_not_retried_by_the_client() -> None:
    async with make_harness() as h:
        (deal,) = h.seed_deals(1)
        h.fake.rate_limit(requests=1, retry_after=3)
        before = h.fake.write_calls()
        with pytest.raises(RateLimited) as info:
            await h.connector.sink.write([FieldWrite("hubspot", "deals", deal, FIELD, 1.0)])
        assert info.value.retry_after == 3
        assert h.fake.write_calls() - before == 1  # the outbox decides when to send it again


async def test_provisioning_hints_owners_and_repeated_creation() -> None:
    async with make_harness() as h:
        prov = h.connector.provisioner
        rate = FieldSpec("companies", "crm_pulse_win_rate", "Win rate", unit="rate")
        money = FieldSpec("companies", "crm_pulse_won", "Won revenue", unit="money")
        count = FieldSpec("companies", "crm_pulse_deals_won", "Deals won", unit="count")
        assert property_body(rate, "crm_pulse")["numberDisplayHint"] == "percentage"
        assert property_body(money, "crm_pulse")["numberDisplayHint"] == "currency"
        assert "numberDisplayHint" not in property_body(count, "crm_pulse")
        with pytest.raises(ConfigError, match="owners take no custom properties"):
            await prov.missing([FieldSpec("owners", "crm_pulse_quota", "Quota")])
        await prov.create([rate])
        # someone (or a retry of ours) created it meanwhile: still fine
        lines = await prov.create([rate, money, count])
        assert lines[0] == "companies.crm_pulse_win_rate exists already"
        assert await prov.missing([rate, money, count]) == []
        created = h.fake.properties["companies"]
        assert {n: p.type for n, p in created.items()} == dict.fromkeys(
            ["crm_pulse_win_rate", "crm_pulse_won", "crm_pulse_deals_won"], "number"
        )
        assert {p.group for p in created.values()} == {"crm_pulse"}


async def test_per_rep_values_go_to_a_custom_object() -> None:
    async with make_harness() as h:
        type_id = h.fake.define_custom_object("rep_scorecards")
        reps = {owner: h.fake.create("rep_scorecards", {"owner": owner}) for owner in ("11", "12")}
        spec = FieldSpec(type_id, "crm_pulse_quota_attainment", "Quota attainment", unit="rate")
        assert await h.connector.provisioner.missing([spec]) == [spec]
        await h.connector.provisioner.create([spec])
        assert await h.connector.provisioner.missing([spec]) == []
        writes = [
            FieldWrite("hubspot", type_id, reps["11"], spec.name, 0.75),
            FieldWrite("hubspot", type_id, reps["12"], spec.name, 1.25),
        ]
        assert all(r.ok for r in await h.connector.sink.write(writes))
        assert h.fake.value("rep_scorecards", reps["11"], spec.name) == "0.75"
        assert h.fake.value("rep_scorecards", reps["12"], spec.name) == "1.25"


async def test_the_runtime_writes_per_rep_attainment_to_their_scorecards(tmp_path: Path) -> None:
    """End to end through the embedded runtime: owners take no properties, so each rep's
    quota attainment goes to that rep's record of a custom object (``target.records``)."""
    async with make_harness(objects=["deals"]) as h:
        type_id = h.fake.define_custom_object("rep_scorecards")
        cards = {o: h.fake.create("rep_scorecards", {"owner": o}) for o in ("11", "12")}
        h.fake.add_property("rep_scorecards", "crm_pulse_attainment")
        now = datetime.now(UTC)
        quarter = date(now.year, 3 * ((now.month - 1) // 3) + 1, 1)
        for owner, amounts in (("11", [500, 250]), ("12", [1000])):
            for amount in amounts:
                h.fake.create(
                    "deals",
                    {
                        "amount": str(amount),
                        "dealstage": "closedwon",
                        "pipeline": "default",
                        "hubspot_owner_id": owner,
                        "closedate": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    },
                )
        text = f"""
connectors:
  - hubspot:
      access_token: ${{HUBSPOT_TOKEN}}
      base_url: {h.server.url}
      ca_cert: {h.server.ca.cert_path if h.server.ca else ""}
      objects: [deals]
metrics:
  quotas:
    - {{owner_id: "11", period: quarter, period_start: {quarter}, amount: 1000}}
    - {{owner_id: "12", period: quarter, period_start: {quarter}, amount: 4000}}
writeback:
  - metric: quota_attainment
    window: quarter
    group: owner_id
    target:
      connector: hubspot
      object: "{type_id}"
      field: crm_pulse_attainment
      records: {{"11": "{cards["11"]}", "12": "{cards["12"]}"}}
runtime: {{state_path: "{tmp_path / "s.sqlite"}", debounce: 0s}}
"""
        deployment = load_config_text(text, env={"HUBSPOT_TOKEN": TOKEN})
        rt = EmbeddedRuntime(deployment)
        try:
            await rt.load_config_events()  # the quotas of the file
            await rt.pollers["hubspot"].backfill()
            await rt.consume_all()
            await rt.tick()
            await rt.flush_writes()
        finally:
            await rt.close()
        assert float(h.fake.value("rep_scorecards", cards["11"], "crm_pulse_attainment")) == 0.75
        assert float(h.fake.value("rep_scorecards", cards["12"], "crm_pulse_attainment")) == 0.25


async def test_a_value_hubspot_cannot_store_fails_alone() -> None:
    async with make_harness() as h:
        a, b = h.seed_deals(2)
        writes = [
            FieldWrite("hubspot", "deals", a, FIELD, float("nan")),
            FieldWrite("hubspot", "deals", b, FIELD, 2.0),
        ]
        results = await h.connector.sink.write(writes)
        assert [r.ok for r in results] == [False, True]
        assert "not a number" in results[0].reason and not results[0].retriable
        assert h.fake.value("deals", b, FIELD) == "2" and h.fake.value("deals", a, FIELD) is None
