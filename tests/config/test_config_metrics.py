"""The metrics and write-back sections: user metrics, enable/disable, quotas and spend as events,
and write-back rules checked against the catalog."""

from __future__ import annotations

import textwrap
from fractions import Fraction
from pathlib import Path

import pytest

from crm_pulse.config import Deployment, load_config, load_config_text
from crm_pulse.errors import ConfigError, ConfigProblem
from crm_pulse.metrics.engine import Engine
from crm_pulse.metrics.events import Event, parse_time
from crm_pulse.metrics.report import MetricValue


def load(text: str, env: dict[str, str] | None = None) -> Deployment:
    return load_config_text(textwrap.dedent(text), file="deploy.yaml", env=env or {})


def problems(text: str, env: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load(text, env)
    return info.value.problems


def rows(engine: Engine, as_of: str, metric: str) -> dict[tuple[str, tuple[str, ...]], Fraction]:
    out: dict[tuple[str, tuple[str, ...]], Fraction] = {}
    for row in engine.report(parse_time(as_of)):
        assert isinstance(row, MetricValue)
        if row.metric == metric and row.value is not None:
            out[(row.window.label, tuple(row.group))] = row.value
    return out


def deal(i: int, owner: str, amount: str, closed: str, version: int = 1) -> Event:
    return Event(
        source="crm",
        object="deal",
        id=str(i),
        op="upsert",
        version=version,
        fields={
            "owner_id": owner,
            "account_id": f"a{i}",
            "status": "won",
            "type": "new",
            "amount": amount,
            "created_at": "2026-01-02T00:00:00Z",
            "closed_at": closed,
        },
    )


# ------------------------------------------------------------------ user metrics


USER_METRIC = """\
    metrics:
      params: {big_deal_min: 1000}
      measures:
        big_won: {object: deal, where: {status: won, amount: {gte: $big_deal_min}}, at: closed_at}
      metrics:
        big_deals_won:
          value: big_won
          groups: [{}, owner_id]
          category: business performance
          unit: count
"""


def test_user_metric_is_in_the_catalog_and_computed() -> None:
    deployment = load(USER_METRIC)
    catalog = deployment.catalog()
    assert "big_deals_won" in catalog.metrics
    assert "win_rate" in catalog.metrics  # built-ins stay
    engine = Engine(catalog)
    engine.apply_all(
        [
            deal(1, "u1", "500", "2026-02-03T10:00:00Z"),
            deal(2, "u1", "1500", "2026-02-04T10:00:00Z"),
            deal(3, "u2", "2500", "2026-02-05T10:00:00Z"),
        ]
    )
    values = rows(engine, "2026-02-28T00:00:00Z", "big_deals_won")
    assert values[("2026-02", ())] == 2
    assert values[("2026-02", ("owner_id", "u1"))] == 1


def test_errors_in_user_definitions_carry_their_path_and_line() -> None:
    found = problems(
        """\
        metrics:
          measures:
            wins: {object: deal, where: {statuss: won}, at: closed_at}
          metrics:
            ratio:
              value: wins / nothing_here
              category: business performance
            other:
              value: wins
              category: sales
        """
    )
    by_path = {p.path: p for p in found}
    assert by_path["metrics.metrics.other.category"].line == 10
    assert "business performance" in by_path["metrics.metrics.other.category"].message
    # found by compiling the catalog (cross-reference checks)
    assert set(by_path) == {"metrics.metrics.other.category"}
    fixed = problems(
        """\
        metrics:
          measures:
            wins: {object: deal, where: {statuss: won}, at: closed_at}
          metrics:
            ratio:
              value: wins / nothing_here
              category: business performance
            count:
              value: wins
              category: business performance
        """
    )
    assert [(p.path, p.line) for p in fixed] == [
        ("metrics.measures.wins", 3),
        ("metrics.metrics.ratio.value", 6),
    ]
    assert "'statuss'" in fixed[0].message
    assert "unknown name 'nothing_here'" in fixed[1].message


def test_enable_disable_and_options() -> None:
    deployment = load(
        """\
        metrics:
          enable: [win_rate, nps, won_revenue]
          disable: [won_revenue]
          nps_scale: 5
          engagement_weights: {call: 10}
        """
    )
    catalog = deployment.catalog()
    assert set(catalog.metrics) == {"win_rate", "nps"}
    assert catalog.params["nps_promoter_min"] == 4
    assert catalog.params["nps_detractor_max"] == 2
    assert catalog.params["engagement_call"] == 10
    assert catalog.params["engagement_meeting"] == 5


def test_unknown_names_in_enable_and_disable() -> None:
    found = problems(
        """\
        metrics:
          enable: [win_rate, won_revenu]
          disable: [nps, nope]
        """
    )
    assert [(p.path, p.line, p.message) for p in found] == [
        ("metrics.enable[1]", 2, "unknown metric 'won_revenu' (did you mean 'won_revenue'?)"),
        ("metrics.disable[1]", 3, "unknown metric 'nope'"),
    ]


def test_goal_checks() -> None:
    found = problems(
        """\
        metrics:
          disable: [nps]
          goals:
            - {name: g1, metric: win_rate, window: 2026, target: 0.5, group: {account_id: a1}}
            - {name: g2, metric: nps, window: 2026-Q1, target: 40}
        """
    )
    by_path = {p.path: p.message for p in found}
    assert by_path["metrics.goals[0].group"].endswith("not account_id")
    assert "disabled" in by_path["metrics.goals[1].metric"]
    (bad_label,) = problems(
        "metrics:\n  goals: [{name: g, metric: nps, window: 2026-13, target: 1}]"
    )
    assert bad_label.path == "metrics.goals[0].window"
    assert "is not 01-12" in bad_label.message


# ------------------------------------------------------------------ quotas and spend


QUOTAS = """\
    timezone: Europe/Berlin
    metrics:
      quotas:
        - {owner_id: u1, period: quarter, period_start: 2026-01-01, amount: 4000}
        - {owner_id: 77, period: month, period_start: 2026-02-01, amount: 1000.5}
      spend:
        - {category: acquisition, period: quarter, period_start: 2026-01-01, amount: 9000}
"""


def test_config_events_are_valid_events() -> None:
    deployment = load(QUOTAS)
    events = deployment.config_events()
    assert [(e.source, e.object, e.id, e.op, e.version) for e in events] == [
        ("config", "quota", "u1:quarter:2026-01-01", "upsert", 1),
        ("config", "quota", "77:month:2026-02-01", "upsert", 1),
        ("config", "spend", "acquisition:quarter:2026-01-01", "upsert", 1),
    ]
    assert events[1].fields == {
        "owner_id": "77",
        "period": "month",
        "period_start": "2026-02-01",
        "amount": "1000.5",
    }
    # each round-trips through the canonical JSON form
    for event in events:
        assert Event.model_validate_json(event.model_dump_json()) == event
    assert deployment.config_events() == events  # deterministic
    assert {e.version for e in deployment.config_events(version=7)} == {7}


def test_configuration_and_events_give_the_same_result() -> None:
    deployment = load(QUOTAS)
    deals = [
        deal(1, "u1", "1000", "2026-01-15T10:00:00Z"),
        deal(2, "u1", "1000", "2026-02-15T10:00:00Z"),
        deal(3, "77", "500", "2026-02-20T10:00:00Z"),
    ]
    as_of = "2026-03-01T00:00:00Z"

    from_config = Engine(deployment.catalog())
    from_config.apply_all([*deployment.config_events(), *deals])

    as_events = [
        Event.model_validate({**e.model_dump(), "source": "planning", "id": f"q{i}", "version": 99})
        for i, e in enumerate(deployment.config_events())
    ]
    from_events = Engine(deployment.catalog())
    from_events.apply_all([*deals, *as_events])

    for metric in ("quota_attainment", "cac"):
        assert rows(from_config, as_of, metric) == rows(from_events, as_of, metric)
    attainment = rows(from_config, as_of, "quota_attainment")
    assert attainment[("2026-Q1", ("owner_id", "u1"))] == Fraction(2000, 4000)
    assert attainment[("2026-02", ("owner_id", "77"))] == Fraction(500) / Fraction("1000.5")


def test_quota_events_replace_the_configured_quota_of_their_owner_and_period() -> None:
    """4000 configured for u1's Q1 plus an event of 4000 for the same owner and period: the
    event replaces the configured amount (2000 won -> 0.5, not 0.25); u1's other periods and
    77's quota keep their configured amounts."""
    deployment = load(QUOTAS)
    deals = [
        deal(1, "u1", "2000", "2026-01-15T10:00:00Z"),
        deal(3, "77", "500", "2026-02-20T10:00:00Z"),
    ]
    quota = Event.model_validate(
        {
            "source": "salesforce",
            "object": "quota",
            "id": "0J91",
            "op": "upsert",
            "version": 5,
            "fields": {
                "owner_id": "u1",
                "period": "quarter",
                "period_start": "2026-01-01",
                "amount": "4000",
            },
        }
    )
    as_of = "2026-03-01T00:00:00Z"
    for order in (
        [*deployment.config_events(), quota, *deals],
        [quota, *deals, *deployment.config_events()],
    ):
        engine = Engine(deployment.catalog())
        engine.apply_all(order)
        attainment = rows(engine, as_of, "quota_attainment")
        assert attainment[("2026-Q1", ("owner_id", "u1"))] == Fraction(1, 2)
        assert attainment[("2026-02", ("owner_id", "77"))] == Fraction(500) / Fraction("1000.5")
    smaller = Event.model_validate(
        {**quota.model_dump(), "version": 6, "fields": {**quota.fields, "amount": "8000"}}
    )
    engine = Engine(deployment.catalog())
    engine.apply_all([*deployment.config_events(), quota, smaller, *deals])
    assert rows(engine, as_of, "quota_attainment")[("2026-Q1", ("owner_id", "u1"))] == Fraction(
        1, 4
    )


def test_quota_problems() -> None:
    found = problems(
        """\
        metrics:
          quotas:
            - {owner_id: u1, period: quarter, period_start: 2026-02-01, amount: 10}
            - {owner_id: u1, period: month, period_start: 2026-02-01, amount: -1}
            - {owner_id: u2, period: year, period_start: 2026-01-01, amount: 10}
            - {owner_id: u2, period: year, period_start: 2026-01-01, amount: 20}
        """
    )
    # structural problems first; duplicates are found by the checks across entries
    assert [(p.path, p.line) for p in found] == [
        ("metrics.quotas[0]", 3),
        ("metrics.quotas[1].amount", 4),
    ]
    assert "first day of a quarter" in found[0].message
    dup = problems(
        """\
        metrics:
          quotas:
            - {owner_id: u2, period: year, period_start: 2026-01-01, amount: 10}
            - {owner_id: u2, period: year, period_start: 2026-01-01, amount: 20}
        """
    )
    assert [(p.path, p.line) for p in dup] == [("metrics.quotas[1]", 4)]


# ------------------------------------------------------------------ write-back rules


CONNECTORS = """\
    connectors:
      - hubspot:
          access_token: ${T}
      - events:
          name: ingress
          secret: ${T}
"""
ENV = {"T": "token-123456"}


def test_writeback_rules_are_checked_against_the_catalog() -> None:
    found = problems(
        CONNECTORS
        + """\
    metrics:
      disable: [nps]
    writeback:
      - metric: win_rat
        window: quarter
        group: owner_id
        target: {connector: hubspot, object: deals, field: a, match: {field: hubspot_owner_id}}
      - metric: nps
        window: quarter
        target: {connector: hubspot, object: companies, field: b, record: "1"}
      - metric: win_rate
        window: quarter
        group: account_id
        target: {connector: hubspot, object: companies, field: c}
      - metric: open_deals
        window: month
        target: {connector: hubspot, object: companies, field: d, record: "1"}
      - metric: won_revenue
        window: current
        target: {connector: hubspot, object: companies, field: e, record: "1"}
      - metric: quota_attainment
        window: rolling:30d
        group: owner_id
        target: {connector: hubspot, object: deals, field: f, match: {field: hubspot_owner_id}}
      - metric: won_revenue
        window: month
        target: {connector: hubspt, object: companies, field: g, record: "1"}
      - metric: won_revenue
        window: month
        target: {connector: ingress, object: companies, field: h, record: "1"}
      - metric: won_revenue
        window: quarter
        target: {connector: hubspot, object: companies, field: e, record: "1"}
    """,
        ENV,
    )
    got = {p.path: p.message for p in found}
    assert got == {
        "writeback[0].metric": "unknown metric 'win_rat' (did you mean 'win_rate'?)",
        "writeback[1].metric": "metric 'nps' is disabled (metrics.enable / metrics.disable)",
        "writeback[2].group": "win_rate is computed for groups {}, owner_id; not account_id",
        "writeback[3].window": "open_deals is a snapshot of the present: use window: current",
        "writeback[4].window": "won_revenue is computed per window: use month, quarter, year or "
        "rolling:<N>d",
        "writeback[5].window": "quota_attainment is computed for calendar windows only (month, "
        "quarter, year), not rolling:30d",
        "writeback[6].target.connector": "no connector named 'hubspt' (did you mean "
        "'hubspot'?) (connectors: hubspot, ingress)",
        "writeback[7].target.connector": "'ingress' is an events ingress: it receives, nothing "
        "is written to it",
        "writeback[8].target": "writes the same field as writeback[4]; each field holds one value",
    }
    lines = {p.path: p.line for p in found}
    assert lines["writeback[0].metric"] == 10


def test_writeback_record_rules() -> None:
    found = problems(
        CONNECTORS
        + """\
    writeback:
      - metric: won_revenue
        window: month
        target: {connector: hubspot, object: companies, field: a}
      - metric: won_revenue
        window: month
        group: owner_id
        target: {connector: hubspot, object: companies, field: b, record: "1"}
      - metric: won_revenue
        window: often
        target: {connector: hubspot, object: companies, field: c, record: "1"}
    """,
        ENV,
    )
    got = {p.path: p.message for p in found}
    assert "set target.record" in got["writeback[0]"]
    assert "remove target.record" in got["writeback[1]"]
    assert "expected day, week, month, quarter, year or rolling:<N>d" in got["writeback[2].window"]


def test_a_valid_writeback_rule_and_windows() -> None:
    deployment = load(
        CONNECTORS
        + """\
    writeback:
      - metric: won_revenue
        window: year
        which: previous
        group: account_id
        target: {connector: hubspot, object: companies, field: won_revenue_last_year}
      - metric: nps
        window: rolling:90d
        target: {connector: hubspot, object: companies, field: nps_90d, record: 42}
    """,
        ENV,
    )
    rule = deployment.writeback[1]
    assert rule.group == () and rule.target.record == "42"
    assert [str(s) for s in deployment.window_specs()] == [
        "month",
        "quarter",
        "year",
        "rolling:90d",
    ]


def test_problems_in_one_section_do_not_hide_the_others() -> None:
    found = problems(
        CONNECTORS
        + """\
    writeback:
      - metric: won_revenue
        window: month
        target: {connector: hubspot, object: companies, field: a, record: "1"}
        colour: red
      - metric: won_revenu
        window: month
        target: {connector: hubspot, object: companies, field: b, record: "1"}
    runtime:
      listen: nowhere
    """,
        ENV,
    )
    assert [p.path for p in found] == [
        "writeback[0].colour",
        "writeback[1].metric",
        "runtime.listen",
    ]


def test_connector_names_must_be_unique(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(
        "connectors:\n"
        "  - hubspot: {access_token: '${T}'}\n"
        "  - hubspot: {access_token: '${T}'}\n"
        "  - events: {name: config, secret: '${T}'}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    assert [(p.path, p.line) for p in info.value.problems] == [
        ("connectors[1].hubspot.name", 3),
        ("connectors[2].events.name", 4),
    ]
    assert "reserved" in info.value.problems[1].message


def test_also_legs_of_a_user_measure_are_checked_and_counted() -> None:
    """``also:`` adds more objects' records to a distinct count (as the built-in active_users
    does); a leg's unknown field is named with the leg's path, and a value counts once."""
    found = problems(
        """\
        metrics:
          measures:
            touched:
              object: deal
              at: closed_at
              distinct: owner_id
              also: [{object: [ticket, user], at: modified_at, distinct: modified_by}]
          metrics:
            people:
              value: touched
              category: user adoption
        """
    )
    assert {p.path for p in found} == {"metrics.measures.touched.also[0]"}
    assert {p.message.split(" (")[0] for p in found} == {
        "object 'user' has no field 'modified_at'",
        "object 'user' has no field 'modified_by'",
    }
    deployment = load(
        """\
        metrics:
          measures:
            touched:
              object: deal
              at: closed_at
              distinct: owner_id
              also: [{object: ticket, at: modified_at, distinct: modified_by}]
          metrics:
            people:
              value: touched
              category: user adoption
        """
    )
    engine = Engine(deployment.catalog())
    for obj, rid, fields in [
        ("deal", "d1", {"owner_id": "u1", "closed_at": "2026-03-02T00:00:00Z"}),
        ("ticket", "t1", {"modified_by": "u1", "modified_at": "2026-03-03T00:00:00Z"}),
        ("ticket", "t2", {"modified_by": "u2", "modified_at": "2026-03-04T00:00:00Z"}),
    ]:
        engine.apply(
            Event.model_validate(
                {
                    "source": "s",
                    "object": obj,
                    "id": rid,
                    "op": "upsert",
                    "version": 1,
                    "fields": fields,
                }
            )
        )
    assert rows(engine, "2026-03-31T00:00:00Z", "people")[("2026-03", ())] == 2  # u1 once, u2
