"""The Faust runtime's settings: a RocksDB store needs its driver, and says so."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

from crm_pulse.config.loader import load_config_text
from crm_pulse.errors import ConfigError
from crm_pulse.streams.faust import FaustPipeline

DEPLOY = """
connectors:
  - file: {name: crm, path: out.jsonl}
runtime:
  kind: faust
  faust: {app_id: settings-test, broker: "kafka://127.0.0.1:1", store: rocksdb}
"""


def test_rocksdb_without_rocksdict_is_a_config_error_naming_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "rocksdict" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    deployment = load_config_text(DEPLOY, file="deploy.yaml", resolve_secrets=False)
    with pytest.raises(ConfigError) as info:
        FaustPipeline(deployment, sinks={})
    assert "runtime.faust.store" in str(info.value)
    assert "rocksdict" in str(info.value)


def test_rocksdb_with_rocksdict_builds_the_pipeline() -> None:
    deployment = load_config_text(DEPLOY, file="deploy.yaml", resolve_secrets=False)
    pipeline = FaustPipeline(deployment, sinks={})
    assert str(pipeline.app.conf.store).startswith("rocksdb:")


def test_exactly_once_is_refused_with_the_reason_and_the_key() -> None:
    text = DEPLOY.replace("store: rocksdb", "processing_guarantee: exactly_once")
    with pytest.raises(ConfigError) as info:
        load_config_text(text, file="deploy.yaml", resolve_secrets=False)
    message = str(info.value)
    assert "deploy.yaml:6" in message
    assert "runtime.faust.processing_guarantee" in message
    assert "at_least_once" in message


def test_a_worker_directory_keeps_one_group_instance_id_and_two_workers_never_share_one(
    tmp_path: Path,
) -> None:
    from crm_pulse.streams.faust.datadir import claim_data_dir

    first = claim_data_dir(tmp_path, "app")
    second = claim_data_dir(tmp_path, "app")  # another worker while the first runs
    ids = (first.instance_id, second.instance_id)
    assert ids[0] != ids[1]
    assert first.path.name in ids[0] and second.path.name in ids[1]
    assert all(re.fullmatch(r"[a-zA-Z0-9._-]{1,249}", i) for i in ids)  # Kafka's rule
    first.release()  # the first worker dies (SIGKILL frees the lock the same way)
    again = claim_data_dir(tmp_path, "app")
    assert (again.path, again.instance_id) == (first.path, ids[0])  # its tables, its id
    assert second.instance_id == ids[1]


def test_static_membership_and_the_session_timeout_reach_the_consumer(tmp_path: Path) -> None:
    text = DEPLOY.replace("store: rocksdb", "store: memory, session_timeout: 3s")
    deployment = load_config_text(text, file="deploy.yaml", resolve_secrets=False)
    conf = FaustPipeline(deployment, sinks={}, instance_id="h-worker-0-ab12cd34").app.conf
    assert conf.consumer_group_instance_id == "h-worker-0-ab12cd34"
    assert conf.broker_session_timeout == 3.0
    assert conf.broker_heartbeat_interval == pytest.approx(0.6)
    assert conf.broker_request_timeout >= conf.broker_session_timeout  # Faust requires it
    off = load_config_text(
        text.replace("session_timeout: 3s", "static_membership: false"),
        file="deploy.yaml",
        resolve_secrets=False,
    )
    conf = FaustPipeline(off, sinks={}, instance_id="h-worker-0-ab12cd34").app.conf
    assert conf.consumer_group_instance_id is None  # a stop leaves the group at once
    assert conf.broker_session_timeout == 10.0 and conf.broker_heartbeat_interval == 1.0


@pytest.mark.parametrize(
    ("value", "reason"),
    [("500ms", "between 1s and 5m, got 500ms"), ("10", "add a unit"), ("1h", "got 1h")],
)
def test_a_bad_session_timeout_is_a_config_error_naming_the_key(value: str, reason: str) -> None:
    text = DEPLOY.replace("store: rocksdb", f"session_timeout: {value}")
    with pytest.raises(ConfigError) as info:
        load_config_text(text, file="deploy.yaml", resolve_secrets=False)
    message = str(info.value)
    assert "deploy.yaml:6" in message and "runtime.faust.session_timeout" in message
    assert reason in message


def test_static_membership_must_be_a_yes_or_no() -> None:
    text = DEPLOY.replace("store: rocksdb", "static_membership: sometimes")
    with pytest.raises(ConfigError) as info:
        load_config_text(text, file="deploy.yaml", resolve_secrets=False)
    assert "runtime.faust.static_membership" in str(info.value)


def test_a_session_timeout_the_broker_would_refuse_is_a_config_error_before_joining() -> None:
    from crm_pulse.streams.faust import session_problem

    kafka_defaults = {"group.min.session.timeout.ms": 6000, "group.max.session.timeout.ms": 1800000}
    assert session_problem(10.0, kafka_defaults) is None
    assert session_problem(10.0, {}) is None  # the broker did not say: start as before
    problem = session_problem(2.0, kafka_defaults)
    assert problem is not None and problem.path == "runtime.faust.session_timeout"
    assert "from 6s to 30m" in problem.message and "refuse 2s" in problem.message
    assert session_problem(2.0, {"group.min.session.timeout.ms": 1000}) is None
