"""``crm-pulse explain --config`` on an embedded state file reads the group's records through
the file's ``record_groups`` table, never the whole state, and prints exactly what explaining
the events file prints; a table that is not current (an older file, or one an older crm-pulse
moved on) is not trusted: the explanation reads every record, and the next start rewrites it.
``crm-pulse report``, filtered or not, reads no record either."""

from __future__ import annotations

import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from crm_pulse.cli import main
from crm_pulse.config import load_config
from crm_pulse.metrics.groupindex import GroupIndex, term_hash
from crm_pulse.streams import explain as explain_module
from crm_pulse.streams.embedded import commands as commands_module
from crm_pulse.streams.embedded.state import SQLiteStore

from ..server.test_ingress_http import deal
from .test_export_and_audit import _deployment_file

AS_OF = ["--as-of", "2026-12-15T00:00:00Z"]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    events: list[dict[str, Any]] = []
    for i in range(60):
        e = deal(i, amount=str(100 + i))
        e["fields"]["owner_id"] = f"u{i % 4}"
        e["fields"]["account_id"] = f"a{i % 7}"
        e["fields"]["status"] = "won" if i % 3 else "lost"
        events.append(e)
    gone = {k: v for k, v in events[4].items() if k != "fields"}
    moved = json.loads(json.dumps(events[8]))
    moved["version"], moved["fields"]["owner_id"] = 5, "u3"  # changes owner: u0 -> u3
    events += [{**gone, "op": "delete", "version": 9}, moved]
    config = _deployment_file(tmp_path, events)
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    assert main(["backfill", "--config", str(config), "--no-progress"], out=io.StringIO()) == 0
    return config


def questions() -> list[list[str]]:
    month = time.strftime("%Y-%m", time.gmtime(time.time() - 3600))
    year = month[:4]
    return [
        ["--metric", "won_revenue", "--window", month],
        ["--metric", "won_revenue", "--window", year, "--group", "owner_id=u3"],
        ["--metric", "win_rate", "--window", year, "--group", "owner_id=u0"],
        ["--metric", "won_revenue", "--window", year, "--group", "account_id=a2"],
        ["--metric", "won_revenue", "--window", year, "--group", "owner_id=nobody"],
        ["--metric", "deals_won", "--window", "last_30d", "--group", "owner_id=u1"],
    ]


def explain(*args: str) -> list[dict[str, Any]]:
    out = io.StringIO()
    assert main(["explain", *args, *AS_OF, "--format", "jsonl"], out=out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count whole-state loads of ``crm-pulse explain``."""
    calls: list[int] = []
    real = SQLiteStore.load

    def counted(self: SQLiteStore, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        real(self, *args, **kwargs)

    monkeypatch.setattr(explain_module.SQLiteStore, "load", counted)
    return calls


def test_explain_reads_the_group_s_records_only_and_says_what_the_events_say(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = str(state.parent / "events.jsonl")
    loads = _loads(monkeypatch)
    read: list[str] = []
    real_get = explain_module._file_records

    def spied(*args: Any) -> Any:
        found = real_get(*args)
        read.extend(repr(k) for k, _v in found or ())
        return found

    monkeypatch.setattr(explain_module, "_file_records", spied)
    for q in questions():
        read.clear()
        from_state = explain("--config", str(state), *q)
        assert from_state == explain(events, "--config", str(state), *q), q
        group = q[-1] if "--group" in q else None
        if group is not None and group != "owner_id=nobody":
            assert read and all("'deal'" in k for k in read)
            assert len(read) <= 16  # the group's deals (15 per owner, one moved to u3), not 60
        if group == "owner_id=nobody":
            assert read == [] and from_state[-1]["value"] in (0, None)
    assert loads == []  # never the whole state


def test_a_table_that_is_not_current_is_not_trusted_and_the_next_start_rewrites_it(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = load_config(str(state), resolve_secrets=False)
    path = deployment.runtime.state_path
    want = {tuple(q): explain("--config", str(state), *q) for q in questions()}
    with sqlite3.connect(path) as conn:  # as if the state moved on without the table
        conn.execute("UPDATE meta SET value = value + 1 WHERE name = 'state_at'")
        conn.execute(  # and the table misses rows: trusting it would lose records
            "DELETE FROM record_groups WHERE k IN (SELECT k FROM record_groups LIMIT 20)"
        )
    loads = _loads(monkeypatch)
    for q in questions():
        assert explain("--config", str(state), *q) == want[tuple(q)]
    assert len(loads) == len(questions())  # read whole, each time
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = value - 1 WHERE name = 'state_at'")
        conn.execute("DELETE FROM meta WHERE name = 'group_index'")  # a file from before
    # the next start (here: a backfill with nothing new) writes the table from the state
    assert main(["backfill", "--config", str(state), "--no-progress"], out=io.StringIO()) == 0
    store = SQLiteStore(GroupIndex(deployment.catalog()))
    with sqlite3.connect(path) as conn:
        store.load(conn)
        rows = set(conn.execute("SELECT term, k FROM record_groups").fetchall())
    assert store.index is not None
    assert rows == {(term_hash(t), repr(k)) for t, k in store.index.rows()} and rows
    loads.clear()
    for q in questions():
        assert explain("--config", str(state), *q) == want[tuple(q)]
    assert loads == []


def test_report_full_or_filtered_reads_no_record(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: list[set[str]] = []
    real = SQLiteStore.load

    def spied(self: SQLiteStore, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        loaded.append({k[0] for k, _v in SQLiteStore.items(self)})

    monkeypatch.setattr(commands_module.SQLiteStore, "load", spied)
    for args in (
        [],
        ["--metric", "won_revenue"],
        ["--metric", "won_revenue", "--window", "2026-12", "--group", "company"],
    ):
        out = io.StringIO()
        code = main(["report", "--config", str(state), *AS_OF, *args], out=out, err=io.StringIO())
        assert code == 0 and out.getvalue()
        assert loaded and not loaded[-1] & {"r", "o"}, (args, loaded[-1])
