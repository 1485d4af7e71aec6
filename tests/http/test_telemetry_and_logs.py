"""The telemetry registry's text format and the structured logging with redaction."""

from __future__ import annotations

import io
import json
import logging

import pytest
from pydantic import SecretStr

from crm_pulse.config.models import EventsSettings
from crm_pulse.streams.http import ErrorEntry, LogStatus, RecentErrors, Status
from crm_pulse.streams.logs import (
    MASK,
    configure_logging,
    redact,
    register_secret,
    register_secrets,
)
from crm_pulse.streams.telemetry import RateMeter, Telemetry


def test_counter_gauge_histogram_render() -> None:
    t = Telemetry()
    c = t.counter("app_requests_total", "Requests.\nAll of them.", ("route",))
    c.inc(route="/a")
    c.inc(2, route='we"ird\\')
    g = t.gauge("app_depth", "Depth.")
    g.set(7)
    g.dec(2)
    h = t.histogram("app_latency_seconds", "Latency.", buckets=(0.1, 1.0))
    for v in (0.05, 0.5, 3.0):
        h.observe(v)
    text = t.render()
    assert text.endswith("\n")
    assert "# HELP app_requests_total Requests.\\nAll of them." in text
    assert "# TYPE app_requests_total counter" in text
    assert 'app_requests_total{route="/a"} 1' in text
    assert 'app_requests_total{route="we\\"ird\\\\"} 2' in text
    assert "app_depth 5" in text
    assert 'app_latency_seconds_bucket{le="0.1"} 1' in text
    assert 'app_latency_seconds_bucket{le="1"} 2' in text
    assert 'app_latency_seconds_bucket{le="+Inf"} 3' in text
    assert "app_latency_seconds_sum 3.55" in text
    assert "app_latency_seconds_count 3" in text
    assert t.counter("app_requests_total", "again", ("route",)) is c
    with pytest.raises(ValueError):
        t.gauge("app_requests_total", "other type")
    with pytest.raises(ValueError):
        c.inc(-1, route="/a")
    with pytest.raises(ValueError):
        c.inc(other="x")


def test_gauge_function_and_rate_meter() -> None:
    t = Telemetry()
    depth = [4]
    t.gauge("outbox_depth", "Depth.").set_function(lambda: depth[0])
    depth[0] = 9
    assert "outbox_depth 9" in t.render()
    now = [100.0]
    meter = RateMeter(window=10, clock=lambda: now[0])
    meter.mark(50)
    now[0] = 105
    meter.mark(50)
    assert meter.rate() == 10.0
    now[0] = 112
    assert meter.rate() == 5.0


def test_json_logs_have_fields_and_redact_secrets() -> None:
    settings = EventsSettings.model_validate({"secret": "json-secret-abc123"})
    assert (
        register_secrets({"events": settings, "plugin": {"token": SecretStr("plug-xyz-789")}}) == 2
    )
    out = io.StringIO()
    handler = configure_logging("info", "json", stream=out)
    try:
        log = logging.getLogger("crm_pulse.test.logs")
        log.debug("hidden")
        log.info("hello %s", "json-secret-abc123", extra={"connector": "events", "n": 3})
        try:
            raise RuntimeError("token plug-xyz-789 refused")
        except RuntimeError:
            log.exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert len(lines) == 2
    first = lines[0]
    assert first["level"] == "info" and first["logger"] == "crm_pulse.test.logs"
    assert (
        first["message"] == f"hello {MASK}" and first["connector"] == "events" and first["n"] == 3
    )
    assert first["time"].endswith("Z")
    assert "RuntimeError" in lines[1]["exc"]
    assert "json-secret-abc123" not in out.getvalue() and "plug-xyz-789" not in out.getvalue()


def test_text_logs() -> None:
    register_secret("text-secret-0000")
    out = io.StringIO()
    handler = configure_logging("warning", "text", stream=out)
    try:
        logging.getLogger("x").warning("got text-secret-0000", extra={"connector": "a"})
    finally:
        logging.getLogger().removeHandler(handler)
    line = out.getvalue()
    assert "WARNING" in line and "x: got **********" in line and "connector='a'" in line


def test_status_dict_is_redacted_and_complete() -> None:
    register_secret("status-secret-1111")
    errors = RecentErrors(size=2)
    errors.add("hubspot", RuntimeError("bad token status-secret-1111"))
    errors.add("outbox", "timeout")
    errors.add("engine", "third")
    status = Status(True, log=LogStatus(appended=10, consumed=7), last_errors=errors.entries())
    data = status.to_dict()
    assert data["log"] == {"appended": 10, "consumed": 7, "lag": 3}
    assert [e["where"] for e in data["last_errors"]] == ["outbox", "engine"]
    assert errors.last("outbox") == ErrorEntry(errors.entries()[0].at, "outbox", "timeout")
    assert "status-secret-1111" not in json.dumps(
        Status(False, problems=["status-secret-1111"]).to_dict()
    )
    assert redact("short") == "short"
