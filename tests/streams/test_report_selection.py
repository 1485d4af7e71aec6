"""``crm-pulse report --metric/--window/--group``: the rows kept are exactly the full report's
rows that match, read from only the selected metrics' state entries, and written as they come."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

from crm_pulse.cli import main
from crm_pulse.config import load_config
from crm_pulse.metrics import build_catalog, parse_time
from crm_pulse.metrics.formats import write_rows
from crm_pulse.metrics.replay import replay
from crm_pulse.metrics.report import Selection
from crm_pulse.streams.embedded.state import SQLiteStore

from ..server.test_ingress_http import deal
from .test_export_and_audit import _deployment_file

AS_OF = ["--as-of", "2026-12-15"]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("report")
    events = [deal(i, amount=str(100 + i)) for i in range(40)]
    for i, e in enumerate(events):
        e["fields"]["owner_id"] = f"u{i % 4}"  # type: ignore[index]
    config = _deployment_file(tmp_path, events)
    assert main(["backfill", "--config", str(config), "--no-progress"], out=io.StringIO()) == 0
    return config


def report(config: Path, *args: str) -> tuple[int, list[dict[str, object]], str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["report", "--config", str(config), *AS_OF, *args], out=out, err=err)
    return code, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def test_each_filter_keeps_exactly_the_matching_rows_of_the_full_report(state: Path) -> None:
    code, everything, _ = report(state)
    assert code == 0 and len(everything) > 50
    cases = {
        ("--metric", "won_revenue"): lambda r: r["metric"] == "won_revenue",
        ("--metric", "won_revenue", "--metric", "deals_won"): lambda r: (
            r["metric"] in ("won_revenue", "deals_won")
        ),
        ("--window", "quarter"): lambda r: "-Q" in str(r["window"]),
        ("--window", "2026-11"): lambda r: r["window"] == "2026-11",
        ("--window", "2026-11", "--window", "2026-Q4"): lambda r: (
            r["window"] in ("2026-11", "2026-Q4")
        ),
        ("--group", "owner_id=u1"): lambda r: r["group"] == {"owner_id": "u1"},
        ("--group", "company"): lambda r: r["group"] == {},
        ("--metric", "win_rate", "--window", "month", "--group", "owner_id=u2"): lambda r: (
            r["metric"] == "win_rate"
            and len(str(r["window"])) == 7
            and "-Q" not in str(r["window"])
            and r["group"] == {"owner_id": "u2"}
        ),
    }
    for args, keep in cases.items():
        code, rows, err = report(state, *args)
        want = [r for r in everything if keep(r)]
        assert code == 0, err
        assert rows == want and want, args


def test_a_metric_without_groups_with_data_elsewhere_is_selected_alone(state: Path) -> None:
    code, rows, _ = report(state, "--metric", "quota_attainment")
    assert code == 0 and rows and {r["metric"] for r in rows} == {"quota_attainment"}


def test_a_selection_nothing_matches_says_so_on_stderr(state: Path) -> None:
    code, rows, err = report(state, "--metric", "win_rate", "--window", "current")
    assert code == 0 and rows == []  # a valid question whose answer is empty
    assert "no value matches --metric win_rate --window current" in err
    code, rows, err = report(state, "--metric", "win_rate")
    assert rows and err == ""


def test_unknown_names_and_bad_filters_are_one_clear_error(state: Path) -> None:
    code, rows, err = report(
        state, "--metric", "no_such", "--window", "2026-13", "--group", "owner_id"
    )
    assert code == 2 and not rows
    assert "--metric no_such" in err and "--window 2026-13" in err and "--group owner_id" in err
    assert "Traceback" not in err


def test_a_selected_report_reads_only_its_measures_entries(state: Path) -> None:
    deployment = load_config(str(state), resolve_secrets=False)
    catalog = deployment.catalog()
    metric = catalog.metrics["won_revenue"]
    wanted = {m.index for m in metric.measures}
    store = SQLiteStore()
    with sqlite3.connect(deployment.runtime.state_path) as conn:
        total = conn.execute("SELECT count(*) FROM state").fetchone()[0]
        records = conn.execute("SELECT count(*) FROM state WHERE k LIKE '(''r'',%'").fetchone()[0]
        store.load(conn, measures=wanted)
        loaded = dict(store.items())
        store.load(conn, measures=())
        every_measure = dict(store.items())
    assert records >= 40 and loaded
    assert all(k[0] not in ("r", "o") and k[1] in wanted for k in loaded)
    assert len(loaded) < len(every_measure) < total - records + 1


def test_csv_and_table_stream_in_the_order_people_read(tmp_path: Path) -> None:
    """Rows computed in the csv/table order, one metric's groups at a time, come out exactly
    as the sorted whole report."""
    catalog = build_catalog()
    events = []
    for i in range(60):
        e = deal(i, amount=str(50 + i))
        e["fields"]["owner_id"] = f"u{i % 11}"  # type: ignore[index]
        events.append(e)
    from crm_pulse.metrics import Event

    as_of = parse_time("2026-12-15T00:00:00Z")
    engine = replay(catalog, [Event.model_validate(e) for e in events], as_of)
    for fmt in ("csv", "table"):
        whole, streamed = io.StringIO(), io.StringIO()
        write_rows(catalog, engine.report(as_of), fmt, whole)
        rows = engine.iter_report(as_of, for_people=True)
        write_rows(catalog, rows, fmt, streamed, presorted=True)
        assert streamed.getvalue() == whole.getvalue() and len(whole.getvalue()) > 1000
    selected = Selection(frozenset({"deals_won"}), frozenset({"month"}), (("owner_id", "u3"),))
    got = list(engine.iter_report(as_of, select=selected))
    want = [
        r
        for r in engine.report(as_of)
        if r.metric == "deals_won"
        and r.window.spec.kind == "month"
        and r.group == ("owner_id", "u3")
    ]
    assert got == want and want
