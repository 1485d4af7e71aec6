"""A Faust worker refuses tables built under other metric definitions (real broker): it exits
with the changes named and the way to rebuild, rather than crash or count wrongly; the edge
forwards its whole log into a new app id, markers last, so the new workers write whole values."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from crm_pulse.config import load_config
from crm_pulse.errors import ConfigError
from crm_pulse.metrics.events import Event
from crm_pulse.streams.explain import explain_deployment
from crm_pulse.streams.faust.app import FaustPipeline
from crm_pulse.streams.faust.definitions import (
    DefinitionsChanged,
    check_definitions,
    definitions_topic,
)
from crm_pulse.streams.faust.edge import EdgeRuntime
from crm_pulse.streams.faust.phases import FIRST_READ

from .test_faust_runtime import Deployment, expected, history

ADDED = """metrics:
  measures:
    ent_won: {object: deal, where: {status: won, pipeline: enterprise}, at: closed_at}
  metrics:
    enterprise_won:
      value: ent_won
      category: business performance
"""


def _check(config: Path) -> bool:
    pipeline = FaustPipeline(load_config(config, resolve_secrets=False), sinks={})
    return asyncio.run(check_definitions(pipeline))


def test_a_worker_refuses_tables_built_under_other_definitions(kafka: str, tmp_path: Path) -> None:
    d = Deployment(tmp_path, kafka)
    events = history(random.Random(11), 200)
    original = d.config.read_text()
    try:
        d.start_worker()  # a new app: the worker records its definitions and builds its tables
        asyncio.run(d.publish(events))
        d.wait_for(expected(d.config, events))
    finally:
        d.stop()
    assert all(p.returncode == 0 for p in d.workers), d.logs()
    assert _check(d.config) is False  # the same definitions: a worker starts

    d.config.write_text(original.replace("runtime:\n", ADDED + "runtime:\n", 1))
    proc = subprocess.run(
        [sys.executable, "-m", "crm_pulse.cli", "worker", "--config", str(d.config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    said = proc.stderr
    assert "Traceback" not in said
    assert (
        f"metric definitions changed since the Faust tables of app '{d.app}' were built "
        "(added: measure ent_won, metric enterprise_won; changed: fields read of deal "
        "(+pipeline))" in said
    )
    assert f"set runtime.faust.app_id to a new name (e.g. '{d.app}-v2')" in said
    with pytest.raises(ConfigError, match="added: measure ent_won"):  # no wrong explanation
        explain_deployment(
            load_config(d.config, resolve_secrets=False), "won_revenue", "current", (), 0
        )
    d.config.write_text(original)  # restoring the former definitions lets workers start again
    assert _check(d.config) is False

    async def forget() -> None:  # tables from before fingerprints: no record of them
        producer = AIOKafkaProducer(bootstrap_servers=kafka)
        await producer.start()
        try:
            await producer.send_and_wait(definitions_topic(d.app), None, key=d.app.encode())
        finally:
            await producer.stop()

    asyncio.run(forget())
    with pytest.raises(DefinitionsChanged, match="does not say which definitions"):
        _check(d.config)


def test_a_new_app_records_its_definitions(kafka: str, tmp_path: Path) -> None:
    d = Deployment(tmp_path, kafka)
    assert _check(d.config) is True
    assert _check(d.config) is False
    d.config.write_text(d.config.read_text().replace("timezone: UTC", "timezone: Europe/Paris"))
    with pytest.raises(DefinitionsChanged, match=r"changed: time zone \(UTC -> Europe/Paris\)"):
        _check(d.config)


def _deal(i: int) -> Event:
    return Event.model_validate(
        {
            "source": "crm",
            "object": "deal",
            "id": f"d{i}",
            "op": "upsert",
            "version": 1,
            "fields": {"owner_id": "u1", "status": "won", "amount": "10"},
        }
    )


async def _read_topic(kafka: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka, auto_offset_reset="earliest")
    await consumer.start()
    out: list[tuple[bytes | None, bytes | None]] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            got = [(m.partition, m.offset, m.key, m.value) for ms in batches.values() for m in ms]
            out.extend((k, v) for _p, _o, k, v in sorted(got))
            if not got and out:
                break
    finally:
        await consumer.stop()
    return out


async def test_the_edge_forwards_its_whole_log_into_a_new_app_id(
    kafka: str, tmp_path: Path
) -> None:
    """The rebuild path: the same state file, a new app id. Every event of the log reaches the
    new events topic, and the first-read markers only after the last of them."""
    d = Deployment(tmp_path, kafka)
    source = tmp_path / "events.jsonl"
    source.write_text(
        "".join(json.dumps(_deal(i).model_dump(mode="json")) + "\n" for i in range(6))
    )
    text = (
        d.config.read_text()
        .replace("max_batch: 50}", f'max_batch: 50, input: "{source}"}}')
        .replace("  kind: faust\n", f'  kind: faust\n  state_path: "{tmp_path / "edge.sqlite"}"\n')
    )
    d.config.write_text(text)
    edge = EdgeRuntime(load_config(d.config, resolve_secrets=False))
    try:
        await edge.pollers["crm"].poll_once()
        await edge.forward_all()
    finally:
        await edge.close()
    new_app = f"{d.app}-v2"
    d.config.write_text(text.replace(f'app_id: "{d.app}"', f'app_id: "{new_app}"'))
    edge = EdgeRuntime(load_config(d.config, resolve_secrets=False))
    try:
        assert edge.catch_up == 6
        await edge.forward_all()
    finally:
        await edge.close()
    got = await _read_topic(kafka, f"{new_app}-events")
    keys = [k for k, _v in got]
    assert sorted(k for k in keys if k != FIRST_READ) == sorted(
        f"crm/deal/d{i}".encode() for i in range(6)
    )
    assert FIRST_READ in keys
