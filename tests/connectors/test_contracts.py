"""The vendor-contract checks bite: answers shaped like the simulators' old mismatches fail,
and a simulator answering outside its contract is caught while a connector test runs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crm_pulse.sandbox import FakeHubSpot, contracts
from crm_pulse.sandbox.contracts.pipedrive import schemas
from crm_pulse.sandbox.server import FakeServer

JSON = "application/json"


def _check(vendor: str, method: str, path: str, status: int, data: Any) -> list[str]:
    return contracts.check(vendor, method, path, status, json.dumps(data).encode(), JSON)


RECORD = {
    "id": "101",
    "properties": {"amount": "10", "hs_object_id": "101"},
    "createdAt": "2026-01-01T00:00:00.000Z",
    "updatedAt": "2026-01-01T00:00:00.000Z",
    "archived": False,
}
TIMES = {"startedAt": "2026-01-01T00:00:00Z", "completedAt": "2026-01-01T00:00:01Z"}


def test_hubspot_batch_answers_need_started_and_completed_times() -> None:
    path = "/crm/v3/objects/deals/batch/read"
    good = {"status": "COMPLETE", "results": [RECORD], **TIMES}
    assert _check("hubspot", "POST", path, 200, good) == []
    old = {"status": "COMPLETE", "results": [RECORD]}  # what the simulator used to send
    assert any("completed_at" in p for p in _check("hubspot", "POST", path, 200, old))
    assert _check("hubspot", "POST", path, 200, {**good, "status": "DONE"})  # an enum


def test_hubspot_ids_and_property_values_are_strings() -> None:
    path = "/crm/v3/objects/deals/search"
    numeric = {**RECORD, "id": 101, "properties": {"amount": 10}}
    found = _check("hubspot", "POST", path, 200, {"total": 1, "results": [numeric]})
    assert any(".id: str expected" in p for p in found)
    assert any("properties.amount: str expected" in p for p in found)
    assoc = "/crm/v4/associations/calls/companies/batch/read"
    old = {  # toObjectId as a number, as the simulator used to send it
        "status": "COMPLETE",
        "results": [{"from": {"id": "1"}, "to": [{"toObjectId": 7, "associationTypes": []}]}],
        **TIMES,
    }
    assert any("toObjectId: str expected" in p for p in _check("hubspot", "POST", assoc, 200, old))


def test_hubspot_429_bodies_carry_error_type_and_policy() -> None:
    path = "/crm/v3/objects/deals/search"
    old = {"status": "error", "message": "limit", "category": "RATE_LIMITS", "correlationId": "x"}
    assert _check("hubspot", "POST", path, 429, old)
    good = {
        "status": "error",
        "message": "You have reached your daily limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "c",
        "policyName": "DAILY",
        "requestId": "r",
    }
    assert _check("hubspot", "POST", path, 429, good) == []


def test_hubspot_pipeline_stages_need_their_times() -> None:
    stage = {"id": "1", "label": "New", "displayOrder": 0, "metadata": {"ticketState": "OPEN"}}
    stage.update(archived=False, createdAt="2024-01-01T00:00:00Z", updatedAt="2024-01-01T00:00:00Z")
    pipeline = {"id": "0", "label": "Support", "displayOrder": 0, "archived": False}
    pipeline.update(stages=[stage], createdAt=stage["createdAt"], updatedAt=stage["updatedAt"])
    assert _check("hubspot", "GET", "/crm/v3/pipelines/tickets", 200, {"results": [pipeline]}) == []
    bare = {k: v for k, v in stage.items() if k not in ("createdAt", "updatedAt")}
    old = {"results": [{**pipeline, "stages": [bare]}]}
    assert _check("hubspot", "GET", "/crm/v3/pipelines/tickets", 200, old)


def test_pipedrive_schemas_record_their_source() -> None:
    source = schemas()["source"]
    assert source["repository"] == "https://github.com/pipedrive/client-nodejs"
    assert source["license"] == "MIT" and source["version"] and source["openapi_generator"]
    assert "GET /api/v2/dealFields" in schemas()["operations"]


def test_pipedrive_answers_are_typed() -> None:
    deal = {"id": 1, "title": "x", "value": 10, "update_time": "2026-01-01T00:00:00Z"}
    page = {"success": True, "data": [deal], "additional_data": {"next_cursor": None}}
    assert _check("pipedrive", "GET", "/api/v2/deals", 200, page) == []
    bad = {**page, "data": [{**deal, "value": "10", "id": "1"}]}
    assert len(_check("pipedrive", "GET", "/api/v2/deals", 200, bad)) == 2
    field = {
        "field_code": "abc",
        "field_name": "Won",
        "field_type": "monetary",
        "is_custom_field": True,
        "is_optional_response_field": False,
    }
    fields = {"success": True, "data": [field], "additional_data": {"next_cursor": None}}
    found = _check("pipedrive", "GET", "/api/v2/dealFields", 200, fields)
    assert any("description" in p for p in found)  # required by the description
    assert _check("pipedrive", "GET", "/api/v2/dealFields", 200, fields | {"data": []}) == []
    assert _check("pipedrive", "GET", "/api/v2/deals", 429, {"success": True}) != []


def test_salesforce_answers_follow_the_documented_shapes() -> None:
    query = "/services/data/v59.0/query"
    assert (
        _check("salesforce", "GET", query, 200, {"totalSize": 0, "done": True, "records": []}) == []
    )
    unfinished = {"totalSize": 5, "done": False, "records": []}
    assert any("nextRecordsUrl" in p for p in _check("salesforce", "GET", query, 200, unfinished))
    job = "/services/data/v59.0/jobs/query/750x"
    failed = {"id": "750x", "state": "Failed", "numberRecordsProcessed": 0}
    assert any("errorMessage" in p for p in _check("salesforce", "GET", job, 200, failed))
    assert _check("salesforce", "GET", job, 412, {"errorCode": "JOB_NOT_COMPLETE"})  # not a list


async def test_a_simulator_answer_outside_the_contract_fails_the_test(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from crm_pulse.sandbox.hubspot import answers as simulator

    monkeypatch.setattr(simulator, "_batch_times", dict)  # the old answer: no times
    fake = FakeHubSpot("tok")
    rid = fake.create("deals", {"amount": "5"})
    import httpx

    with FakeServer(fake.app()) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            answer = await http.post(
                "/crm/v3/objects/deals/batch/read",
                json={"inputs": [{"id": rid}], "properties": ["amount"]},
                headers={"Authorization": "Bearer tok"},
            )
    assert answer.status_code == 200
    found = contracts.take()  # taken here, so that this test itself passes
    assert [v.path for v in found] == ["/crm/v3/objects/deals/batch/read"]
    assert "completed_at" in found[0].problem
