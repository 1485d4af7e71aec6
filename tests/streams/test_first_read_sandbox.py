"""Never wipe, never flicker on every sandbox CRM (HubSpot, Pipedrive, Salesforce, monday): the demo deployment's target fields hold
values before the first start; the runtime reads every CRM (several pages each) while it
applies what it read, and each field receives at most one write, the complete value, never a
null (an undefined metric leaves the value that was there)."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

from crm_pulse.config import load_config
from crm_pulse.sandbox import Sandbox
from crm_pulse.streams.embedded import commands
from crm_pulse.streams.embedded.demo import demo_config_path, sandbox_values
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime

from ..server.test_ingress_http import free_port

BEFORE = 777


def _record_writes(sandbox: Sandbox, fields: set[str]) -> list[tuple[str, str, str, Any]]:
    """Every value the four CRMs receive for the target fields, in order."""
    seen: list[tuple[str, str, str, Any]] = []
    hubspot, pipedrive, salesforce = sandbox.hubspot, sandbox.pipedrive, sandbox.salesforce
    hs_update, pd_update, sf_update = hubspot.update, pipedrive.update, salesforce.update
    pd_names = lambda entity: {k: f["name"] for k, f in pipedrive.fields[entity].items()}  # noqa: E731

    def hs(object_type: str, rid: str, properties: Any, **kw: Any) -> None:
        seen.extend([("hubspot", rid, k, v) for k, v in properties.items() if k in fields])
        hs_update(object_type, rid, properties, **kw)

    def pd(entity: str, rid: str, data: Any, *, custom: Any = None) -> None:
        names = pd_names(entity)
        seen.extend([("pipedrive", rid, names.get(k, k), v) for k, v in (custom or {}).items()])
        pd_update(entity, rid, data, custom=custom)

    def sf(sobject: str, rid: str, values: Any, **kw: Any) -> None:
        seen.extend([("salesforce", rid, k, v) for k, v in values.items() if k in fields])
        sf_update(sobject, rid, values, **kw)

    hubspot.update, pipedrive.update, salesforce.update = hs, pd, sf  # type: ignore[method-assign]

    monday = sandbox.monday
    mo_change = monday._change  # where change_multiple_column_values lands

    def mo(args: Any) -> Any:
        raw = args.get("column_values")
        values = json.loads(raw) if isinstance(raw, str) else raw
        titles = {c["id"]: c["title"] for c in monday.boards[str(args["board_id"])]["columns"]}
        rid = str(args.get("item_id"))
        for cid, value in (values or {}).items():
            if titles.get(cid, cid) in fields:
                seen.append(("monday", rid, titles.get(cid, cid), value))
        return mo_change(args)

    monday._change = mo  # type: ignore[method-assign]
    return seen


async def test_every_sandbox_crm_sees_one_complete_value_per_field(tmp_path: Path) -> None:
    sandbox = Sandbox().start()
    try:
        env = sandbox.environment(str(tmp_path / "s.sqlite"), free_port())
        deployment = load_config(demo_config_path(), env=env)
        await commands.provision(deployment, io.StringIO(), dry_run=False)
        targets = {
            (r.target.connector, r.target.object, r.target.record) for r in deployment.writeback
        }
        # values the fields hold before crm-pulse ever starts
        for rule in deployment.writeback:
            t = rule.target
            if t.connector == "hubspot" and t.record:
                sandbox.hubspot.update("companies", t.record, {t.field: str(BEFORE)})
            elif t.connector == "pipedrive" and t.record:
                key = next(
                    k
                    for k, f in sandbox.pipedrive.fields["organizations"].items()
                    if f["name"] == t.field
                )
                sandbox.pipedrive.update("organizations", t.record, {}, custom={key: BEFORE})
            elif t.connector == "salesforce" and t.record:
                sandbox.salesforce.update("Account", t.record, {t.field: BEFORE})
            elif t.connector == "monday" and t.record:
                sandbox.monday.update_item(t.record, {t.field: BEFORE})
        before = sandbox_values(sandbox, deployment)
        fields = {r.target.field for r in deployment.writeback}
        writes = _record_writes(sandbox, fields)
        runtime = EmbeddedRuntime(deployment)
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        for _ in range(600):
            await asyncio.sleep(0.1)
            if runtime.planner.ready and runtime.consumed_events and not runtime.pending_writes():
                await asyncio.sleep(1.0)  # anything else would be written now
                if not runtime.pending_writes():
                    break
        assert runtime.planner.ready
        stop.set()
        await task
        after = sandbox_values(sandbox, deployment)
    finally:
        sandbox.stop()
    assert writes, "nothing was written"
    per_field: dict[tuple[str, str, str], list[Any]] = {}
    for connector, rid, field, value in writes:
        per_field.setdefault((connector, rid, field), []).append(value)
    assert {k: v for k, v in per_field.items() if len(v) > 1} == {}  # no partial value first
    assert [k for k, v in per_field.items() if v[0] in (None, "")] == []  # never a null
    # a company-wide field crm-pulse did not write keeps the value it had (undefined metric)
    kept = [k for k, v in after.items() if v == BEFORE]
    for key in kept:
        assert before[key] == BEFORE
    assert len(targets) >= 4 and len(per_field) > 10
    assert {connector for connector, _, _ in per_field} == {
        "hubspot",
        "pipedrive",
        "salesforce",
        "monday",
    }
