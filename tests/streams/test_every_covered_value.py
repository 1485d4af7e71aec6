"""Every value a write-back rule covers reaches the CRM, in a straight run as after a restart.

A group's row in a rule's target window exists once the group has data in that window or an
earlier one (an account whose wins are all in earlier quarters has won revenue 0 this quarter).
Such values used to be written only by the full re-evaluation of a restart's first tick, so
a restart wrote fields a straight run never wrote.
"""

from __future__ import annotations

from pathlib import Path

from crm_pulse.config import load_config_text
from crm_pulse.connectors.file import read_values
from crm_pulse.connectors.protocols import Connector
from crm_pulse.metrics.events import Event, parse_time
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime, build_connectors

from .conftest import Clock
from .fakes import ListSource
from .test_embedded_pipeline import expected

DEPLOY = """
timezone: UTC
connectors:
  - file: {{name: out, path: "{out}", max_batch: 100}}
writeback:
  - {{metric: won_revenue, window: quarter, group: account_id, target: {{connector: out, object: Account, field: won_qtd}}}}
  - {{metric: won_revenue, window: year, group: owner_id, target: {{connector: out, object: User, field: won_ytd}}}}
runtime:
  state_path: "{state}"
  debounce: 1s
  batch_size: 2
"""


def deal(i: int, status: str, closed: str, account: str, owner: str) -> Event:
    return Event.model_validate(
        {
            "source": "crm",
            "object": "deal",
            "id": str(i),
            "op": "upsert",
            "version": 1,
            "fields": {
                "owner_id": owner,
                "account_id": account,
                "status": status,
                "amount": "100",
                "created_at": "2025-01-01T00:00:00Z",
                "closed_at": closed,
                "type": "new",
            },
        }
    )


async def test_values_covered_through_earlier_windows_are_written_without_a_restart(
    tmp_path: Path,
) -> None:
    deployment = load_config_text(
        DEPLOY.format(out=tmp_path / "writes.jsonl", state=tmp_path / "state.sqlite"),
        base_dir=tmp_path,
    )
    clock = Clock(parse_time("2026-11-20T12:00:00Z") / 1000)
    events = [
        deal(1, "won", "2026-08-10T10:00:00Z", "a1", "u1"),  # a1: wins in an earlier quarter only
        deal(2, "won", "2026-11-02T10:00:00Z", "a2", "u2"),
        deal(3, "lost", "2026-11-05T10:00:00Z", "a3", "u2"),  # a3: no win at all, no row
        deal(4, "won", "2025-03-01T10:00:00Z", "a4", "u3"),  # u3: wins in an earlier year only
        deal(5, "won", "2026-11-06T10:00:00Z", "a2", "u2"),
    ]
    rt = EmbeddedRuntime(deployment, clock=clock)
    await rt.tick()  # a start on an empty state: the first tick sees nothing
    await rt.ingest("crm", events)
    await rt.consume_all()  # batches of 2: the earlier-window changes come in separate batches
    await rt.tick()  # no window rolled over
    clock.now += 5
    await rt.flush_writes()
    want = {k: v for k, v in expected(deployment, events, int(clock.now * 1000)).items()}
    assert want[("Account", "a1", "won_qtd")] == 0
    assert want[("User", "u3", "won_ytd")] == 0
    assert read_values(tmp_path / "writes.jsonl") == {
        k: v for k, v in want.items() if v is not None
    }
    await rt.close()

    # a restart re-evaluates every group at its first tick: it finds nothing left to write
    lines = (tmp_path / "writes.jsonl").read_text().splitlines()
    again = EmbeddedRuntime(deployment, clock=clock)
    await again.tick()
    await again.consume_all()
    clock.now += 5
    assert await again.flush_writes(drain=True) == 0
    await again.close()
    assert (tmp_path / "writes.jsonl").read_text().splitlines() == lines


class _Crm(Connector):
    kind = "plugin"


async def test_the_value_covered_through_an_earlier_window_waits_for_the_first_reads(
    tmp_path: Path,
) -> None:
    """The first-read rule holds for the 0 a group gets from earlier-window data too: a change
    in an earlier window while a pulling source's first read is under way plans nothing; the
    first writes, after the read, carry the 0 with every other value."""
    deployment = load_config_text(
        DEPLOY.format(out=tmp_path / "writes.jsonl", state=tmp_path / "state.sqlite").replace(
            "connectors:\n", f'connectors:\n  - file: {{name: crm, path: "{tmp_path}/u.jsonl"}}\n'
        ),
        base_dir=tmp_path,
    )
    clock = Clock(parse_time("2026-11-20T12:00:00Z") / 1000)
    crm = _Crm("crm", {})
    crm.source = ListSource([deal(2, "won", "2026-11-02T10:00:00Z", "a2", "u2")])
    out = build_connectors(deployment)["out"]
    rt = EmbeddedRuntime(deployment, connectors={"crm": crm, "out": out}, clock=clock)
    try:
        # a webhook's event of an account whose wins are all in earlier quarters
        await rt.ingest("crm", [deal(1, "won", "2026-08-10T10:00:00Z", "a1", "u1")])
        await rt.consume_all()
        await rt.tick()
        assert rt.pending_writes() == []  # not even a1's 0: the first read is under way
        await rt.pollers["crm"].poll_once()
        await rt.consume_all()
        planned = {(w.object, w.record_id, w.value) for w, _old in rt.pending_writes()}
        assert ("Account", "a1", 0) in planned
        assert ("Account", "a2", 100) in planned
    finally:
        await rt.close()
