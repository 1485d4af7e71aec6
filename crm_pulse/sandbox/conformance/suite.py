"""The checks: :class:`ConformanceSuite`, and the ``conformance`` marker it registers as a pytest
plugin."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ...config.connectors import ConnectorSettings
from ...connectors.protocols import (
    BadRecord,
    FieldProvisioner,
    FieldWrite,
    Sink,
    Source,
    WebhookReceiver,
)
from ...connectors.registry import connector_class
from ...errors import RateLimited, RetriableError, Unauthorized
from ...metrics.catalog import build_catalog
from ...metrics.engine import Engine
from ...metrics.events import Event
from ...metrics.modifier import CHANGED_AT, CHANGED_BY
from .harness import Harness, HarnessFactory, drain


def _deals(events: list[Event]) -> list[Event]:
    return [e for e in events if e.object == "deal"]


def _besides_changes(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in (CHANGED_BY, CHANGED_AT)}


def _source(h: Harness) -> Source:
    if h.connector.source is None:
        pytest.skip(f"{h.kind} has no source")
    return h.connector.source


def _receiver(h: Harness) -> WebhookReceiver:
    if h.connector.receiver is None:
        pytest.skip(f"{h.kind} receives no webhooks")
    return h.connector.receiver


def _sink(h: Harness) -> Sink:
    if h.connector.sink is None:
        pytest.skip(f"{h.kind} has no sink")
    return h.connector.sink


def _provisioner(h: Harness) -> FieldProvisioner:
    if h.connector.provisioner is None:
        pytest.skip(f"{h.kind} has no provisioner")
    return h.connector.provisioner


def _faults(h: Harness) -> None:
    if not h.faults:
        pytest.skip(f"{h.kind}'s simulator produces no failures on demand")


def _run(factory: HarnessFactory, check: Callable[[Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        async with factory() as harness:
            await check(harness)

    asyncio.run(main())


def pytest_configure(config: pytest.Config) -> None:
    """Registers the ``conformance`` marker (when used as a plugin)."""
    config.addinivalue_line("markers", "conformance: the crm-pulse connector conformance suite")


@pytest.mark.conformance
class ConformanceSuite:
    """Subclass it as ``Test...`` and provide the ``conformance_harness`` fixture."""

    # ------------------------------------------------------------ the connector class

    def test_connector_is_registered_with_its_settings_model(
        self, conformance_harness: HarnessFactory
    ) -> None:
        async def check(h: Harness) -> None:
            cls = type(h.connector)
            assert cls.kind == h.kind
            assert connector_class(h.kind) is cls, "register the class in crm_pulse.connectors"
            assert issubclass(cls.settings_model, ConnectorSettings)
            assert cls.settings_model is not ConnectorSettings, "declare settings_model"
            assert h.connector.poll_interval > 0

        _run(conformance_harness, check)

    # ------------------------------------------------------------ source

    def test_backfill_reads_every_record(self, conformance_harness: HarnessFactory) -> None:
        async def check(h: Harness) -> None:
            source = _source(h)
            ids = h.seed_deals(450)
            events, cursor = await drain(source.backfill(None))
            upserts = {e.id for e in _deals(events) if e.op == "upsert"}
            assert set(ids) <= upserts
            assert cursor is not None

        _run(conformance_harness, check)

    def test_equal_modified_times_across_pages_lose_nothing(
        self, conformance_harness: HarnessFactory
    ) -> None:
        async def check(h: Harness) -> None:
            source = _source(h)
            _, cursor = await drain(source.backfill(None))
            ids = h.seed_deals(450, same_modified_at=True)
            events, cursor2 = await drain(source.poll(cursor))
            seen = [e.id for e in _deals(events) if e.op == "upsert"]
            assert set(ids) <= set(seen)
            # polling again brings nothing new that was not re-read on purpose (overlap)
            again, _ = await drain(source.poll(cursor2))
            for event in _deals(again):
                assert event.id in ids
            versions = {e.id: e.version for e in _deals(events)}
            assert all(e.version <= versions.get(e.id, e.version) for e in _deals(again))

        _run(conformance_harness, check)

    def test_changed_record_is_polled_with_a_greater_version(
        self, conformance_harness: HarnessFactory
    ) -> None:
        async def check(h: Harness) -> None:
            source = _source(h)
            (deal,) = h.seed_deals(1)
            events, cursor = await drain(source.backfill(None))
            first = next(e for e in _deals(events) if e.id == deal)
            h.touch(deal)
            events, _ = await drain(source.poll(cursor))
            later = [e for e in _deals(events) if e.id == deal]
            assert later and max(e.version for e in later) > first.version
            assert later[-1].fields != first.fields

        _run(conformance_harness, check)

    def test_deletes_become_delete_events(self, conformance_harness: HarnessFactory) -> None:
        async def check(h: Harness) -> None:
            source = _source(h)
            if not h.deletes:
                pytest.skip(f"{h.kind}'s simulator does not delete records")
            ids = h.seed_deals(3)
            _, cursor = await drain(source.backfill(None))
            h.delete(ids[0])
            events, _ = await drain(source.poll(cursor))
            deletes = [e for e in _deals(events) if e.op == "delete"]
            assert [e.id for e in deletes] == [ids[0]]

        _run(conformance_harness, check)

    def test_a_record_that_cannot_be_mapped_is_skipped_and_reported(
        self, conformance_harness: HarnessFactory
    ) -> None:
        async def check(h: Harness) -> None:
            source = _source(h)
            if not h.bad_records:
                pytest.skip(f"{h.kind}'s simulator cannot hold an unmappable record")
            good = h.seed_deals(2)
            bad = h.seed_bad_deal()
            events: list[Event] = []
            skipped: list[BadRecord] = []
            async for page in source.backfill(None):  # one bad record stops nothing
                events.extend(page.events)
                skipped.extend(page.skipped)
            assert set(good) <= {e.id for e in _deals(events) if e.op == "upsert"}
            assert bad not in {e.id for e in _deals(events) if e.op == "upsert"}
            reported = [r for r in skipped if r.id == bad or bad in r.where]
            assert reported, f"{bad} is neither an event nor in a page's skipped"
            assert all(r.reason for r in reported)

        _run(conformance_harness, check)

    # ------------------------------------------------------------ webhooks

    def test_webhook_genuine_is_accepted_forged_is_refused(
        self, conformance_harness: HarnessFactory
    ) -> None:
        async def check(h: Harness) -> None:
            receiver = _receiver(h)
            assert receiver.path.startswith("/")
            (deal,) = h.seed_deals(1)
            genuine = h.signed_webhook(deal)
            receiver.verify(genuine)
            events = await receiver.parse(genuine)
            assert deal in {e.id for e in _deals(events)}
            with pytest.raises(Unauthorized) as info:
                receiver.verify(h.forged_webhook(deal))
            assert info.value.reason

        _run(conformance_harness, check)

    # ------------------------------------------------------------ sink

    def test_writeback_is_batched_to_the_vendor_limit(
        self, conformance_harness: HarnessFactory
    ) -> None:
        async def check(h: Harness) -> None:
            sink = _sink(h)
            ids = h.seed_deals(250)
            writes = []
            for i, deal in enumerate(ids):
                obj, rid, fld = h.writeback_target(deal)
                writes.append(FieldWrite(h.kind, obj, rid, fld, float(i)))
            before = h.write_calls()
            results = []
            for start in range(0, len(writes), sink.max_batch):
                results.extend(await sink.write(writes[start : start + sink.max_batch]))
            assert [r.ok for r in results] == [True] * len(writes)
            assert [r.write for r in results] == writes
            batches = math.ceil(len(writes) / min(sink.max_batch, h.records_per_call))
            assert h.write_calls() - before == batches
            for w in writes[::37]:
                assert float(h.field_value(w.object, w.record_id, w.field)) == w.value

        _run(conformance_harness, check)

    def test_writes_to_one_record_are_one_call(self, conformance_harness: HarnessFactory) -> None:
        async def check(h: Harness) -> None:
            sink = _sink(h)
            (deal,) = h.seed_deals(1)
            obj, rid, fld = h.writeback_target(deal)
            before = h.write_calls()
            writes = [FieldWrite(h.kind, obj, rid, fld, float(v)) for v in (1, 2, 3)]
            results = await sink.write(writes)
            assert all(r.ok for r in results)
            assert h.write_calls() - before == 1
            assert float(h.field_value(obj, rid, fld)) == 3.0

        _run(conformance_harness, check)

    def test_rate_limited_write_says_when_to_retry(
        self, conformance_harness: HarnessFactory
    ) -> None:
        async def check(h: Harness) -> None:
            sink = _sink(h)
            if not h.rate_limits:
                pytest.skip(f"{h.kind}'s simulator has no rate limits")
            (deal,) = h.seed_deals(1)
            obj, rid, fld = h.writeback_target(deal)
            h.rate_limit(requests=50, retry_after=7)
            with pytest.raises(RateLimited) as info:
                await sink.write([FieldWrite(h.kind, obj, rid, fld, 1.0)])
            assert info.value.retry_after == pytest.approx(7)

        _run(conformance_harness, check)

    def test_our_own_write_changes_no_canonical_field(
        self, conformance_harness: HarnessFactory
    ) -> None:
        async def check(h: Harness) -> None:
            source, sink = _source(h), _sink(h)
            ids = h.seed_deals(5)
            events, cursor = await drain(source.backfill(None))
            before = {e.id: e.fields for e in _deals(events) if e.op == "upsert"}
            engine = Engine(build_catalog())
            engine.apply_all(events)
            for deal in ids:
                obj, rid, fld = h.writeback_target(deal)
                (result,) = await sink.write([FieldWrite(h.kind, obj, rid, fld, 42.0)])
                assert result.ok
            events, _ = await drain(source.poll(cursor))
            for event in _deals(events):
                if event.id in before:
                    assert event.op == "upsert"
                    was = before[event.id]
                    assert _besides_changes(event.fields) == _besides_changes(was), event.id
                    # who changed it last: the same, or not said (our own change keeps it)
                    said = (event.fields.get(CHANGED_BY), event.fields.get(CHANGED_AT))
                    assert said in ((was.get(CHANGED_BY), was.get(CHANGED_AT)), (None, None))
                    assert not engine.apply_counted(event), event.id  # no metric moves

        _run(conformance_harness, check)

    # ------------------------------------------------------------ provisioner

    def test_provisioner_creates_missing_fields_once(
        self, conformance_harness: HarnessFactory
    ) -> None:
        async def check(h: Harness) -> None:
            provisioner = _provisioner(h)
            spec = h.new_field()
            assert await provisioner.missing([spec]) == [spec]
            lines = await provisioner.create([spec])
            assert lines  # what was done, for `crm-pulse provision` to print
            assert await provisioner.missing([spec]) == []

        _run(conformance_harness, check)

    # ------------------------------------------------------------ the vendor's failures

    def test_a_few_server_errors_are_retried_and_nothing_is_lost(
        self, conformance_harness: HarnessFactory
    ) -> None:
        async def check(h: Harness) -> None:
            source = _source(h)
            _faults(h)
            ids = h.seed_deals(20)
            h.server_errors(2)
            events, _ = await drain(source.backfill(None))
            assert set(ids) <= {e.id for e in _deals(events) if e.op == "upsert"}

        _run(conformance_harness, check)

    def test_endless_server_errors_fail_as_retriable(
        self, conformance_harness: HarnessFactory
    ) -> None:
        async def check(h: Harness) -> None:
            source = _source(h)
            _faults(h)
            h.seed_deals(3)
            h.server_errors(1000)
            with pytest.raises(RetriableError):  # tried again later, never "fatal"
                await drain(source.backfill(None))

        _run(conformance_harness, check)

    def test_a_slow_answer_times_out_and_is_retried(
        self, conformance_harness: HarnessFactory
    ) -> None:
        async def check(h: Harness) -> None:
            source = _source(h)
            _faults(h)
            ids = h.seed_deals(5)
            h.slow_answers(1)
            events, _ = await drain(source.backfill(None))
            assert set(ids) <= {e.id for e in _deals(events) if e.op == "upsert"}

        _run(conformance_harness, check)

    def test_a_used_up_daily_allowance_pauses_and_resumes(
        self, conformance_harness: HarnessFactory
    ) -> None:
        async def check(h: Harness) -> None:
            source = _source(h)
            _faults(h)
            ids = h.seed_deals(5)
            h.exhaust_daily()
            with pytest.raises(RateLimited) as paused:  # a pause, never a failure
                await drain(source.backfill(None))
            assert paused.value.retry_after is not None and paused.value.retry_after >= 60
            h.restore_daily()
            events, _ = await drain(source.backfill(None))
            assert set(ids) <= {e.id for e in _deals(events) if e.op == "upsert"}

        _run(conformance_harness, check)
