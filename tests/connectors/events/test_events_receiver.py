"""The events receiver: signature, timestamp, replay, size, sources, and event validation."""

from __future__ import annotations

import json
import time

import pytest

from crm_pulse.connectors.events import (
    HEADER,
    EventsConnector,
    EventsReceiver,
    InvalidEvents,
    parse_header,
    signature,
)
from crm_pulse.connectors.events.settings import EventsSettings
from crm_pulse.connectors.protocols import WebhookReceiver, WebhookRequest
from crm_pulse.connectors.registry import build_connector
from crm_pulse.errors import DataError, Unauthorized

SECRET = "s3cret-ingress-key-0123"
NOW = 1_800_000_000


def deal(i: int, **over: object) -> dict[str, object]:
    event: dict[str, object] = {
        "source": "erp",
        "object": "deal",
        "id": f"d{i}",
        "op": "upsert",
        "version": 1,
        "fields": {"amount": "100.5", "status": "open", "owner_id": "u1"},
    }
    event.update(over)
    return event


def request(
    body: bytes,
    *,
    ts: int = NOW,
    now: int = NOW,
    secret: str = SECRET,
    ct: str = "application/json",
) -> WebhookRequest:
    headers = {HEADER: f"t={ts},v1={signature(secret, body, ts)}", "Content-Type": ct}
    return WebhookRequest("POST", "http://x/events", headers, body, now * 1000)


def receiver(**kw: object) -> EventsReceiver:
    return EventsReceiver(SECRET, clock=lambda: NOW, **kw)  # type: ignore[arg-type]


async def test_valid_object_array_and_jsonl_parse() -> None:
    r = receiver()
    one = json.dumps(deal(1)).encode()
    many = json.dumps([deal(2), deal(3)]).encode()
    lines = b"\n".join(json.dumps(deal(i)).encode() for i in (4, 5, 6)) + b"\n"
    for body, ids in ((one, ["d1"]), (many, ["d2", "d3"]), (lines, ["d4", "d5", "d6"])):
        req = request(body)
        r.verify(req)
        events = await r.parse(req)
        assert [e.id for e in events] == ids
        assert events[0].values["amount"] == 100_500_000


def test_jsonl_by_content_type() -> None:
    body = json.dumps(deal(1)).encode() + b"\n"
    receiver().verify(request(body, ct="application/x-ndjson"))


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no X-Crm-Pulse-Signature"),
        ({HEADER: "garbage"}, "malformed"),
        ({HEADER: f"t={NOW}"}, "expected t="),
        ({HEADER: "v1=" + "0" * 64}, "expected t="),
        ({HEADER: f"t=abc,v1={'0' * 64}"}, "Unix time"),
        ({HEADER: f"t={NOW},v1=xyz"}, "64 hex"),
        ({HEADER: f"t={NOW},v1={'0' * 64}"}, "does not match"),
    ],
)
def test_bad_headers_are_unauthorized(headers: dict[str, str], reason: str) -> None:
    req = WebhookRequest("POST", "u", headers, json.dumps(deal(1)).encode(), NOW * 1000)
    with pytest.raises(Unauthorized) as info:
        receiver().verify(req)
    assert reason in info.value.reason
    assert SECRET not in str(info.value)


def test_wrong_secret_and_tampered_body() -> None:
    body = json.dumps(deal(1)).encode()
    with pytest.raises(Unauthorized, match="does not match"):
        receiver().verify(request(body, secret="other-secret"))
    good = request(body)
    tampered = WebhookRequest(
        "POST", "u", good.headers, body.replace(b"100.5", b"999"), good.received_at_ms
    )
    with pytest.raises(Unauthorized, match="does not match"):
        receiver().verify(tampered)


def test_stale_and_future_timestamps() -> None:
    body = json.dumps(deal(1)).encode()
    r = receiver(tolerance=300.0)
    r.verify(request(body, ts=NOW - 299))
    with pytest.raises(Unauthorized, match="old"):
        r.verify(request(body, ts=NOW - 301))
    with pytest.raises(Unauthorized, match="in the future"):
        r.verify(request(body, ts=NOW + 301))


def test_a_repeat_within_the_window_verifies_the_inbox_answers_it_as_a_duplicate() -> None:
    # replays are recognised durably by the inbox (tests/server/test_edge_hardening.py)
    r = receiver()
    req = request(json.dumps(deal(1)).encode())
    r.verify(req)
    r.verify(req)


def test_oversize_body_is_unauthorized() -> None:
    body = json.dumps([deal(i) for i in range(50)]).encode()
    with pytest.raises(Unauthorized, match="over the limit"):
        receiver(max_body_bytes=len(body) - 1).verify(request(body))


def test_sources_restriction() -> None:
    body = json.dumps([deal(1), deal(2, source="hubspot")]).encode()
    with pytest.raises(Unauthorized, match="hubspot not allowed"):
        receiver(sources=["erp"]).verify(request(body))
    receiver(sources=["erp", "hubspot"]).verify(request(body))


def test_every_bad_item_is_named_with_index_and_field() -> None:
    items = [
        deal(0),
        deal(1, op="merge"),
        deal(2, fields={"amount": "lots"}),
        {"object": "deal", "id": "x", "op": "upsert", "version": 1},
        [1, 2],
    ]
    r = receiver()
    req = request(json.dumps(items).encode())
    with pytest.raises(InvalidEvents) as info:
        r.verify(req)
    found = {(p.index, p.field) for p in info.value.problems}
    assert found == {(1, "op"), (2, "fields.amount"), (3, "source"), (4, "")}
    text = str(info.value)
    assert "[1]: op: expected 'upsert' or 'delete'" in text
    assert "[2]: fields.amount:" in text and "[3]: source: missing" in text
    assert "4 bad event(s) of 5" in text
    # a refused body is not remembered: the corrected request is not a replay
    r.verify(request(json.dumps([deal(0)]).encode()))


def test_jsonl_problems_carry_line_numbers() -> None:
    body = json.dumps(deal(1)).encode() + b"\n\n{oops\n" + json.dumps(deal(2, version="x")).encode()
    with pytest.raises(InvalidEvents) as info:
        receiver().verify(request(body))
    assert [(p.index, p.line, p.field) for p in info.value.problems] == [
        (1, 3, ""),
        (2, 4, "version"),
    ]


@pytest.mark.parametrize("body", [b"", b"   ", b"[]", b"42", b"[{]"])
def test_unreadable_bodies_are_data_errors(body: bytes) -> None:
    with pytest.raises(DataError):
        receiver().verify(request(body))


def test_header_parsing_accepts_several_signatures() -> None:
    assert parse_header(f"t={NOW}, v1={'a' * 64},v0=old,v1={'B' * 64}") == (
        NOW,
        ["a" * 64, "b" * 64],
    )


def test_connector_from_settings_and_registry() -> None:
    settings = EventsSettings.model_validate({"secret": SECRET, "sources": ["erp"]})
    connector = build_connector("events", "events", settings)
    assert isinstance(connector, EventsConnector)
    assert isinstance(connector.receiver, WebhookReceiver)
    assert connector.receiver.path == "/events"
    assert connector.source is None and connector.sink is None
    other = EventsConnector("partner", {"secret": SECRET})
    assert other.receiver.path == "/events/partner"
    assert SECRET not in repr(connector.receiver) and SECRET not in repr(settings)
    body = json.dumps(deal(1)).encode()
    now = int(time.time())
    connector.receiver.verify(request(body, ts=now, now=now))


async def test_parse_after_verify_and_after_a_restart() -> None:
    body = json.dumps([deal(1), deal(2)]).encode()
    req = request(body)
    r = receiver()
    r.verify(req)
    first = await r.parse(req)
    assert [e.id for e in first] == ["d1", "d2"]
    restarted = receiver()  # a request read back from the log after a restart
    assert await restarted.parse(req) == first
