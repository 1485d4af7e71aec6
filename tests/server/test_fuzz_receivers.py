"""Fuzzing every receiver and the event parser (Hypothesis): no 5xx for any request, signed or
not; nothing accepted can stop the runtime; valid events keep being applied afterwards.

One runtime (ingress, Pipedrive, HubSpot, Salesforce against their simulators) serves the whole
module from a background thread; each example is one real HTTP request to it.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from crm_pulse.connectors.events import sign
from crm_pulse.connectors.events.parsing import parse_events
from crm_pulse.connectors.hubspot.webhooks import signature_v3
from crm_pulse.errors import DataError
from crm_pulse.metrics import Engine, Event, build_catalog
from crm_pulse.streams.embedded import quarantine
from crm_pulse.streams.embedded.log import event_json
from tests.connectors.hubspot.harness import APP_SECRET
from tests.connectors.pipedrive.harness import HOOK_PASSWORD, HOOK_USER
from tests.connectors.salesforce.harness import SECRET as SF_SECRET
from tests.server.test_edge_hardening import INGRESS, Edge, edge
from tests.server.test_ingress_http import deal

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

NASTY_TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "x\ud800",
            "\udfff",
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00+14:00",
            "0001-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "1e300",
            "-0",
            "NaN",
            "Infinity",
            "../../v1/users",
            "%2e%2e/",
            "\x00",
            "a" * 5000,
            "9" * 400,
        ]
    ),
    st.text(st.characters(codec=None, categories=["Cs", "Co", "Cc", "Zs"]), max_size=5),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**300, -(10**30), 2**63, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
    NASTY_TEXT,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(NASTY_TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)


def mutated(base: dict[str, Any]) -> st.SearchStrategy[Any]:
    """``base`` with one value somewhere replaced or added (a near-valid payload)."""

    def mutate(draw: Any) -> Any:
        doc = json.loads(json.dumps(base))
        node = doc
        path = draw(st.lists(st.integers(0, 20), max_size=3))
        for step in path:
            if isinstance(node, dict) and node:
                key = sorted(node)[step % len(node)]
                if isinstance(node[key], dict | list):
                    node = node[key]
                    continue
                node[key] = draw(JSON)
                return doc
            if isinstance(node, list) and node:
                node = node[step % len(node)]
        if isinstance(node, dict):
            node[draw(NASTY_TEXT)] = draw(JSON)
        return doc

    return st.composite(lambda draw: mutate(draw))()


# ---------------------------------------------------------------------- the event parser


@FUZZ
@given(st.one_of(mutated(deal(1)), JSON, st.lists(mutated(deal(2)), max_size=3)))
def test_the_event_parser_refuses_or_accepts_and_what_it_accepts_is_safe(doc: Any) -> None:
    body = json.dumps(doc).encode()
    try:
        events = parse_events(body)
    except DataError:
        return
    engine = Engine(build_catalog())
    for event in events:
        again = Event.model_validate_json(event_json(event))  # the log can always read it back
        assert again == event
        engine.apply(event)  # and the engine applies it without failing
    engine.report(int(time.time() * 1000))


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([None, "application/x-ndjson"]))
def test_the_event_parser_never_raises_anything_but_data_errors(body: bytes, kind: Any) -> None:
    try:
        parse_events(body, kind)
    except DataError:
        pass
    except ValidationError:  # pragma: no cover - would be a bug: reported per item
        raise


# ---------------------------------------------------------------------- the receivers


class Server:
    """The module's runtime, served from a background thread."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.edge: Edge | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # pragma: no cover - reported by the tests
            self.error = exc
            self.ready.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        async with edge(self.tmp) as e:
            self.edge = e
            self.ready.set()
            while not self.stopping.is_set():
                await asyncio.sleep(0.05)

    def run(self, coro: Any) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def request(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        assert self.edge is not None
        parts = urlsplit(self.edge.base)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("fuzz"))
    s.thread.start()
    s.ready.wait(60)
    if s.error is not None:
        raise s.error
    yield s
    s.stopping.set()
    s.thread.join(60)


SEEN: dict[str, set[int]] = {}
"""Answers each kind of authenticated request got (the fuzzing reached past the checks)."""

PATHS = ["/events", "/webhooks/pipedrive", "/webhooks/hubspot", "/webhooks/salesforce"]
HEADER_NAMES = [
    "Authorization",
    "Content-Type",
    "X-Crm-Pulse-Signature",
    "X-HubSpot-Signature-v3",
    "X-HubSpot-Request-Timestamp",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "Content-Encoding",
]
HEADER_VALUE = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80),
    st.sampled_from(["t=1,v1=" + "0" * 64, "Basic !!!", "9" * 400, "gzip", "application/x-ndjson"]),
)
BODY = st.one_of(
    st.binary(max_size=400),
    JSON.map(lambda d: json.dumps(d).encode()),
    st.sampled_from([b"[" * 5000, b'{"a":' + b"1" * 5000 + b"}", b"<!DOCTYPE x>", b""]),
)


def _check_alive(server: Server) -> None:
    assert server.edge is not None
    assert server.edge.runtime.health() is None, server.edge.runtime.health()


@FUZZ
@given(
    st.sampled_from(PATHS),
    st.dictionaries(st.sampled_from(HEADER_NAMES), HEADER_VALUE, max_size=4),
    BODY,
    st.sampled_from(["", "?token=x", "?token=" + "%ff" * 3, "?a=%00"]),
)
def test_no_unauthenticated_request_gets_a_5xx(
    server: Server, path: str, headers: dict[str, str], body: bytes, query: str
) -> None:
    status = server.request(path + query, body, headers)
    assert status < 500, (path, headers, body[:100])
    _check_alive(server)


def _pipedrive(server: Server, doc: Any) -> tuple[str, bytes, dict[str, str]]:
    token = base64.b64encode(f"{HOOK_USER}:{HOOK_PASSWORD}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    return "/webhooks/pipedrive", json.dumps(doc).encode(), headers


def _hubspot(server: Server, doc: Any) -> tuple[str, bytes, dict[str, str]]:
    assert server.edge is not None
    body = json.dumps(doc).encode()
    ts = str(int(time.time() * 1000))
    url = server.edge.base + "/webhooks/hubspot"
    sig = signature_v3(APP_SECRET.encode(), "POST", url, body, ts)
    headers = {"X-HubSpot-Signature-v3": sig, "X-HubSpot-Request-Timestamp": ts}
    return "/webhooks/hubspot", body, {**headers, "Content-Type": "application/json"}


def _ingress(server: Server, doc: Any) -> tuple[str, bytes, dict[str, str]]:
    body = json.dumps(doc).encode()
    return "/events", body, sign(INGRESS, body)


PIPEDRIVE_BODY = {
    "meta": {"action": "change", "entity": "deal", "entity_id": "1", "id": "e", "version": "2.0"},
    "data": {
        "id": 1,
        "title": "t",
        "value": 10,
        "status": "won",
        "won_time": "2026-11-01 10:00:00",
    },
    "previous": {"status": "open"},
}
HUBSPOT_BODY = [
    {"subscriptionType": "deal.propertyChange", "objectId": 1, "occurredAt": 1, "portalId": 1}
]


def _soap(fields: dict[str, Any]) -> bytes:
    from xml.sax.saxutils import escape

    inner = "".join(
        f"<sf:{k}>{escape(str(v))}</sf:{k}>"
        for k, v in fields.items()
        if isinstance(k, str) and k.isidentifier()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        '<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        "<OrganizationId>00D000000000001AAA</OrganizationId><Notification><Id>04l1</Id>"
        '<sObject xmlns:sf="urn:sobject.enterprise.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="sf:Opportunity">'
        f"{inner}</sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>"
    ).encode("utf-8", "surrogatepass")


@FUZZ
@given(
    st.sampled_from(["ingress", "pipedrive", "hubspot", "salesforce"]),
    st.data(),
)
def test_no_authenticated_request_gets_a_5xx_and_nothing_stops_the_runtime(
    server: Server, kind: str, data: st.DataObject
) -> None:
    if kind == "ingress":
        doc = data.draw(st.one_of(mutated(deal(1)), st.lists(mutated(deal(2)), max_size=3)))
        path, body, headers = _ingress(server, doc)
    elif kind == "pipedrive":
        path, body, headers = _pipedrive(server, data.draw(mutated(PIPEDRIVE_BODY)))
    elif kind == "hubspot":
        path, body, headers = _hubspot(server, data.draw(mutated({"x": HUBSPOT_BODY})).get("x"))
    else:
        fields = data.draw(
            mutated(
                {
                    "Id": "006000000000001AAA",
                    "SystemModstamp": "2026-11-01T10:00:00.000Z",
                    "Amount": "10",
                }
            )
        )
        body = _soap(fields if isinstance(fields, dict) else {})
        path, headers = f"/webhooks/salesforce?token={SF_SECRET}", {"Content-Type": "text/xml"}
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        assume(kind == "salesforce")
    status = server.request(path, body, headers)
    assert status < 500, (kind, body[:200])
    SEEN.setdefault(kind, set()).add(status)
    _check_alive(server)


def test_after_the_fuzzing_valid_events_are_still_applied(server: Server) -> None:
    assert server.edge is not None
    e = server.edge
    before = server.run(e.runtime.status_async())["consumed_position"]
    path, body, headers = _ingress(server, [deal(777, amount="77")])
    assert server.request(path, body, headers) == 200
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = server.run(e.runtime.status_async())
        if status["consumed_position"] > before and status["backlog"] == 0:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the valid event was not applied: {status}")
    _check_alive(server)
    for kind in ("ingress", "pipedrive", "hubspot", "salesforce"):
        assert 200 in SEEN.get(kind, set()), (kind, SEEN)  # accepted, then parsed or quarantined
    # whatever the fuzzing got past the edge and failed later is in the quarantine, counted
    count = server.run(e.runtime.db.run(lambda: quarantine.count(e.runtime.db.conn)))
    assert status["quarantined"] == count
