"""The connector kit: building canonical events, and reporting a bad record (skipped and
quarantined) apart from a failure of the whole call."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from crm_pulse.connectors import (
    CANONICAL_FIELDS,
    BadRecord,
    Cursor,
    Page,
    delete,
    map_records,
    upsert,
)
from crm_pulse.errors import DataError
from crm_pulse.streams.embedded.database import Database
from crm_pulse.streams.embedded.pollers import Poller


def test_upsert_and_delete_build_canonical_events() -> None:
    event = upsert("zoho", "deal", 42, 1_700_000_000_000, {"amount": "12.50", "status": "won"})
    assert (event.key, event.op, event.version) == (
        ("zoho", "deal", "42"),
        "upsert",
        1_700_000_000_000,
    )
    assert event.values["amount"] == 12_500_000
    gone = delete("zoho", "deal", "42", 1_700_000_000_001)
    assert (gone.op, gone.fields) == ("delete", {})
    assert set(CANONICAL_FIELDS["deal"]) >= {"amount", "status", "owner_id", "closed_at"}


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"amount": "lots"}, "fields.amount"),
        ({"status": "maybe"}, "expected one of lost, open, won"),
        ({"amout": "1"}, "not canonical deal field(s): amout"),
    ],
)
def test_a_value_that_does_not_fit_is_a_data_error_naming_the_record(
    fields: dict[str, Any], words: str
) -> None:
    with pytest.raises(DataError) as info:
        upsert("zoho", "deal", "7", 1, fields)
    assert info.value.where == "deal 7"
    assert words in info.value.reason


def test_map_records_sets_bad_records_aside() -> None:
    records = [{"id": "1", "amount": "5"}, {"id": "2", "amount": "n/a"}, {"id": "3", "amount": "7"}]
    events, bad = map_records(
        records,
        lambda r: [upsert("zoho", "deal", r["id"], 1, {"amount": r["amount"]})],
        describe=lambda r: ("Deals", r["id"]),
    )
    assert [e.id for e in events] == ["1", "3"]
    assert [(b.object, b.id, b.where) for b in bad] == [("Deals", "2", "deal 2")]
    assert "fields.amount" in bad[0].reason
    assert str(bad[0]).startswith("Deals 2 (deal 2): ")


class _SkippingSource:
    async def _pages(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        if cursor:
            return
        good = [upsert("crm", "deal", "1", 1, {"amount": "5"})]
        yield Page(good, {"pos": 1}, skipped=[BadRecord("Deals", "2", "amount is 'n/a'")])

    def backfill(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._pages(cursor)

    def poll(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._pages(cursor)


async def test_skipped_records_are_quarantined_with_the_page_and_the_rest_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(tmp_path / "s.sqlite")
    kept: list[tuple[str, list[str], bool]] = []

    def quarantine(
        conn: sqlite3.Connection, connector: str, records: Sequence[BadRecord], now_ms: int
    ) -> None:
        kept.append((connector, [str(r) for r in records], conn.in_transaction))

    poller = Poller(db, "crm", _SkippingSource(), 60.0, quarantine=quarantine)
    with caplog.at_level(logging.WARNING, logger="crm_pulse.pollers"):
        assert await poller.poll_once() == 1
    assert kept == [("crm", ["Deals 2: amount is 'n/a'"], True)]
    assert poller.stats.skipped == 1 and poller.stats.events == 1
    assert any(r.getMessage() == "record skipped" for r in caplog.records)
    # without a quarantine the record is still logged and counted, never dropped silently
    other = Poller(Database(tmp_path / "t.sqlite"), "crm", _SkippingSource(), 60.0)
    assert await other.poll_once() == 1
    assert other.stats.skipped == 1
    db.close()


def test_vendor_times_are_bounded_the_same_way_in_every_connector() -> None:
    from crm_pulse.connectors import iso_time, time_ms
    from crm_pulse.connectors.monday.mapping import to_ms as monday_ms
    from crm_pulse.connectors.pipedrive.mapping import to_ms as pipedrive_ms
    from crm_pulse.connectors.zoho.mapping import to_ms as zoho_ms
    from crm_pulse.errors import DataError

    assert time_ms("2026-11-02") == 1_793_577_600_000
    assert time_ms("2026-11-02 10:00:00") == time_ms("2026-11-02T10:00:00Z")
    assert time_ms("2026-11-02T10:00:00+05:30") == time_ms("2026-11-02T04:30:00Z")
    assert time_ms("") is None and iso_time(None) is None
    assert iso_time(time_ms("2026-11-02T10:00:00Z")) == "2026-11-02T10:00:00Z"
    for parse in (time_ms, monday_ms, pipedrive_ms, zoho_ms):
        for bad in ("9999-12-31T23:59:59Z", "0001-01-01", "not a time"):
            with pytest.raises(DataError):
                parse(bad)
