from __future__ import annotations

import io
import json
import logging

from crm_pulse.config import load_config_text
from crm_pulse.streams.logs import configure_logging, secret_values


def test_json_logs_carry_context_and_never_a_secret() -> None:
    deployment = load_config_text(
        "connectors:\n  - events: {secret: '${K}'}\n", env={"K": "very-secret-key-42"}
    )
    secrets = secret_values(deployment)
    assert secrets == ["very-secret-key-42"]
    out = io.StringIO()
    handler = configure_logging("info", "json", secrets, stream=out)
    try:
        log = logging.getLogger("crm_pulse.test")
        log.warning(
            "refused %s",
            "very-secret-key-42",
            extra={"connector": "events", "reason": "x very-secret-key-42"},
        )
        log.debug("not shown at info")
    finally:
        logging.getLogger().removeHandler(handler)
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "warning" and record["logger"] == "crm_pulse.test"
    assert record["connector"] == "events"
    assert "very-secret-key-42" not in line
    assert record["message"] == "refused ***" and record["reason"] == "x ***"
