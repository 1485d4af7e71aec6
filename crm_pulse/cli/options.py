"""What several commands share: ``--config``, ``--as-of``, and loading the deployment."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..metrics import (
    parse_time,
)

if TYPE_CHECKING:
    from ..config.models import Deployment


def _as_of(text: str | None) -> int:
    if text is None:
        return int(time.time() * 1000)
    value = text.strip()
    if len(value) == 10:  # a date: its start in UTC
        value += "T00:00:00Z"
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ConfigError(f"--as-of: {exc}") from None


def _deployment(path: str, *, secrets: bool = True) -> Deployment:
    from ..config import load_config

    return load_config(path, resolve_secrets=secrets)


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        help="the deployment YAML file (default: $CRM_PULSE_CONFIG, then ./crm-pulse.yaml)",
    )
