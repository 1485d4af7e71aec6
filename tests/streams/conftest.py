from __future__ import annotations

from pathlib import Path

import pytest

from crm_pulse.config import Deployment, load_config_text


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


DEPLOY = """
timezone: UTC
connectors:
  - file: {{name: out, path: "{out}", max_batch: {max_batch}}}
writeback:
  - {{metric: won_revenue, window: month, group: {{}}, target: {{connector: out, object: Company, record: "c1", field: won_revenue_mtd}}}}
  - {{metric: won_revenue, window: month, which: previous, group: {{}}, target: {{connector: out, object: Company, record: "c1", field: won_revenue_last_month}}}}
  - {{metric: win_rate, window: quarter, group: owner_id, target: {{connector: out, object: User, field: win_rate_qtd}}}}
  - {{metric: deals_won, window: rolling:30d, group: {{}}, target: {{connector: out, object: Company, record: "c1", field: deals_won_30d}}}}
runtime:
  state_path: "{state}"
  debounce: 2s
  batch_size: {batch}
"""


@pytest.fixture
def make_deployment(tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(max_batch: int = 100, batch: int = 50) -> Deployment:
        text = DEPLOY.format(
            out=tmp_path / "writes.jsonl",
            state=tmp_path / "state.sqlite",
            max_batch=max_batch,
            batch=batch,
        )
        return load_config_text(text, base_dir=tmp_path)

    return make
