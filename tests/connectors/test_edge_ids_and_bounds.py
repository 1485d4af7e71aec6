"""Issue 13: ids from webhooks validated, bounds on canonical events, bounded JSON."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from crm_pulse.cli import main
from crm_pulse.connectors.hubspot.webhooks import _hubspot_id
from crm_pulse.connectors.pipedrive.webhooks import _numeric_id
from crm_pulse.connectors.salesforce.webhooks import is_record_id, parse_notifications
from crm_pulse.errors import DataError
from crm_pulse.metrics.events import LIMITS, Event, parse_amount, parse_date, parse_time
from crm_pulse.safejson import MAX_DEPTH, loads


def test_webhook_ids_are_what_each_vendor_uses() -> None:
    assert _numeric_id(12) and _numeric_id("12") and not _numeric_id("../1")
    assert not _numeric_id("\u0661\u0662") and not _numeric_id(True) and not _numeric_id(0)
    assert _hubspot_id(5) and _hubspot_id("5") and not _hubspot_id("5/../x")
    assert not _hubspot_id("\u0665") and not _hubspot_id(None) and not _hubspot_id("9" * 30)
    assert is_record_id("006000000000001") and is_record_id("006000000000001AAA")
    for bad in ("006000000000001AA", "../../sobjects/User", "006000000000001A A", "0" * 19):
        assert not is_record_id(bad)


def test_a_salesforce_notification_with_a_forged_id_is_refused() -> None:
    body = (
        b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        b'<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        b"<OrganizationId>00D000000000001AAA</OrganizationId><Notification><Id>1</Id>"
        b'<sObject xmlns:sf="urn:sobject.enterprise.soap.sforce.com" '
        b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="sf:Opportunity">'
        b"<sf:Id>../../x</sf:Id></sObject></Notification></notifications></soapenv:Body>"
        b"</soapenv:Envelope>"
    )
    with pytest.raises(DataError, match="not a Salesforce id"):
        parse_notifications(body)


@pytest.mark.parametrize(
    "value",
    [
        "1899-12-31T23:59:59Z",
        "2200-01-01T00:00:00Z",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
        "0001-01-01T00:00:00Z",
        "2026-01-01T00:00:00+" + "0" * 100,
    ],
)
def test_times_outside_1900_to_2200_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        parse_time(value)


def test_the_bounds_themselves_are_accepted() -> None:
    assert parse_time("1900-01-01T00:00:00Z") < parse_time("2199-12-31T23:59:59.999Z")
    assert parse_date("1900-01-01").year == 1900
    with pytest.raises(ValueError):
        parse_date("2200-01-01")
    assert parse_amount("999999999999999.999999") == 999_999_999_999_999_999_999
    assert "1900" in str(LIMITS["time"])


@pytest.mark.parametrize(
    "value",
    [
        10**15,
        -(10**15),
        "1e15",
        "1" * 41,
        float("inf"),
        float("nan"),
        pytest.param(10**5000, id="5000-digits"),
    ],
)
def test_amounts_are_finite_and_bounded(value: object) -> None:
    with pytest.raises(ValueError):
        parse_amount(value)


def test_strings_ids_and_fields_are_bounded_and_valid_text() -> None:
    base = {"source": "s", "object": "deal", "id": "1", "op": "upsert", "version": 1}
    for bad in (
        {"id": "x" * 256},
        {"source": "s" * 101},
        {"id": "\ud800"},
        {"fields": {"owner_id": "x" * 1025}},
        {"fields": {"note": "x" * 10_001}},
        {"fields": {"\udc00": 1}},
        {"fields": {f"f{i}": 1 for i in range(501)}},
        {"fields": {"n": json.loads("[" * 17 + "]" * 17)}},
        {"version": 2**63},
    ):
        with pytest.raises(ValueError):
            Event.model_validate({**base, **bad})
    Event.model_validate({**base, "fields": {"note": "x" * 10_000, "nested": [[1]]}})


def test_bounded_json_refuses_depth_and_long_numbers_without_recursion() -> None:
    with pytest.raises(DataError, match="nested 100000 deep"):
        loads(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(DataError, match="too long"):
        loads(b"1" * 5000)
    assert loads(b'["[[[[", {"a": "]]]"}]') == ["[[[[", {"a": "]]]"}]
    assert loads(json.dumps([[0]] * 10).encode())
    depth_ok = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert loads(depth_ok) is not None


def test_replay_skips_the_poison_lines_of_finding_1(tmp_path: Path) -> None:
    good = {
        "source": "crm",
        "object": "deal",
        "id": "1",
        "op": "upsert",
        "version": 1,
        "fields": {"status": "won", "amount": "10", "closed_at": "2026-11-01T00:00:00Z"},
    }
    lines = [json.dumps(good)]
    for fields in (
        {"owner_id": "x\ud800"},
        {"closed_at": "9999-12-31T23:59:59-14:00"},
        {"closed_at": "0001-01-01T00:00:00+14:00"},
        {"amount": 10**300},
    ):
        lines.append(json.dumps({**good, "id": "2", "fields": {**good["fields"], **fields}}))
    lines.append("[" * 50_000 + "]" * 50_000)
    lines.append('{"amount": ' + "9" * 5000 + "}")
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    config = tmp_path / "d.yaml"
    config.write_text("timezone: America/New_York\n")
    out, err = io.StringIO(), io.StringIO()
    code = main(["replay", str(path), "--config", str(config), "--as-of", "2026-11-15"], out, err)
    assert code == 0, err.getvalue()
    assert "skipped 6 bad line(s)" in err.getvalue()
    assert "Traceback" not in err.getvalue()
    assert len(out.getvalue().splitlines()) < 5000  # no report blown up by years 0001/9999
