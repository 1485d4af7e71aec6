"""The read-back capability (``FieldReader``) of every CRM connector, against its simulator:
what the sink wrote is what the reader reads; an edit made in the CRM shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from crm_pulse.connectors.protocols import FieldReader, FieldWrite

from ..conformance.harness import Harness
from ..conformance.test_conformance import _harness_modules


@pytest.fixture(params=_harness_modules())
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    async with request.param.make_harness() as h:
        yield h


async def test_what_the_sink_wrote_reads_back(harness: Harness) -> None:
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
