"""The Faust runtime's settings: a RocksDB store needs its driver, and says so."""

from __future__ import annotations

import importlib.util
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
