"""A real single-node Kafka (KRaft, 127.0.0.1, free ports) for the Faust runtime's tests.

The jars come from Maven Central through Maven the first time (``scripts/kafka/broker.py``)
and are cached in ``.cache/kafka``. If the broker cannot start the tests fail: they are never
skipped.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_BROKER = Path(__file__).resolve().parents[2] / "scripts" / "kafka" / "broker.py"


def _module() -> Any:
    spec = importlib.util.spec_from_file_location("crm_pulse_kafka_broker", _BROKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def kafka() -> Iterator[str]:
    broker = _module().KafkaBroker().start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
