"""The read-back capability (``FieldReader``) of every CRM connector, against its simulator:
what the sink wrote is what the reader reads; an edit made in the CRM shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from crm_pulse.connectors.protocols import FieldReader, FieldWrite
from crm_pulse.sandbox.conformance import Harness

from .hubspot.harness import make_harness as hubspot
from .monday.harness import make_harness as monday
from .pipedrive.harness import make_harness as pipedrive
from .salesforce.harness import make_harness as salesforce
from .zoho.harness import make_harness as zoho


@pytest.fixture(
    params=[
        pytest.param(hubspot, id="hubspot"),
        pytest.param(pipedrive, id="pipedrive"),
        pytest.param(salesforce, id="salesforce"),
    ]
)
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    async with request.param() as h:
        yield h


@pytest.fixture(
    params=[
        pytest.param(hubspot, id="hubspot"),
        pytest.param(pipedrive, id="pipedrive"),
        pytest.param(salesforce, id="salesforce"),
        pytest.param(zoho, id="zoho"),
        pytest.param(monday, id="monday"),
    ]
)
async def readable(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    async with request.param() as h:
        yield h


async def test_what_the_sink_wrote_reads_back(readable: Harness) -> None:
    harness = readable
    ids = harness.seed_deals(3)
    targets = [harness.writeback_target(i) for i in ids]
    connector = harness.connector
    assert connector.sink is not None and connector.reader is not None
    assert isinstance(connector.reader, FieldReader)
    values: list[Any] = [0.25, 1200, None]
    writes = [FieldWrite(connector.name, *t, v) for t, v in zip(targets, values, strict=True)]
    assert all(r.ok for r in await connector.sink.write(writes))
    got = await connector.reader.read(targets)
    assert [got.get(t, "absent") for t in targets][:2] == [0.25, 1200]
    assert got.get(targets[2]) is None  # empty
    missing = (
        targets[0][0],
        "999999999" if harness.kind != "salesforce" else "006000000000999AAA",
        targets[0][2],
    )
    assert missing not in await connector.reader.read([missing])


async def test_a_target_field_that_cannot_hold_a_number_is_found(harness: Harness) -> None:
    from crm_pulse.connectors.protocols import FieldSpec, FieldTypeChecker

    obj, _, number_field = harness.writeback_target(harness.seed_deals(1)[0])
    fake: Any = harness.fake  # type: ignore[attr-defined]
    if harness.kind == "hubspot":
        fake.add_property(obj, "crm_pulse_text", "string")
        text_field = "crm_pulse_text"
    elif harness.kind == "salesforce":
        fake.add_field(obj, "Text__c", "string")
        text_field = "Text__c"
    else:
        fake.add_field("deals", "Text note", "varchar")
        text_field = "Text note"
    checker = harness.connector.type_checker
    assert checker is not None and isinstance(checker, FieldTypeChecker)
    specs = [
        FieldSpec(obj, number_field, "n"),
        FieldSpec(obj, text_field, "t"),
        FieldSpec(obj, "nope", "x"),
    ]
    unfit = await checker.unfit(specs)
    assert list(unfit) == [(obj, text_field)]
    assert "not a number" in unfit[(obj, text_field)]
