"""``crm-pulse audit``: read the target fields back from each CRM and list the drift.

For every field crm-pulse has written (the ``written`` table of the state file: the value it
last wrote), the connector's :class:`~crm_pulse.connectors.protocols.FieldReader` reads what
the CRM holds now. A field whose value differs is drift: someone edited it, a workflow wrote
it, or a write was lost. Fields with a write still pending are listed as pending, not as drift.
Nothing is written anywhere.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..config.models import Deployment
from ..connectors.protocols import FieldKey
from ..errors import ConfigError, ConfigProblem, CrmPulseError
from .embedded.database import Database
from .embedded.runtime import build_connectors

__all__ = ["Drift", "audit", "same_value"]

Value = float | int | str | None


@dataclass(frozen=True)
class Drift:
    connector: str
    field: FieldKey
    ours: Value
    theirs: Value
    missing: bool = False

    def line(self) -> str:
        obj, rid, name = self.field
        where = f"{self.connector} {obj} {rid} {name}"
        if self.missing:
            return f"drift: {where}: crm-pulse wrote {self.ours}; the record or field is gone"
        return f"drift: {where}: crm-pulse wrote {self.ours}, the CRM holds {self.theirs}"


def same_value(ours: Value, theirs: Value) -> bool:
    """Equal as the CRM stores numbers (to 6 significant places after rounding)."""
    if ours is None or theirs is None or isinstance(ours, str) or isinstance(theirs, str):
        return ours == theirs
    return math.isclose(float(ours), float(theirs), rel_tol=1e-6, abs_tol=1e-9)


def _written(path: str) -> tuple[dict[str, dict[FieldKey, Value]], set[tuple[str, ...]]]:
    db = Database(path)
    try:
        rows = db.call(
            lambda: db.conn.execute(
                "SELECT connector, object, record_id, field, value FROM written"
            ).fetchall()
        )
        pending = db.call(
            lambda: db.conn.execute(
                "SELECT connector, object, record_id, field FROM outbox"
            ).fetchall()
        )
    finally:
        db.close()
    out: dict[str, dict[FieldKey, Value]] = {}
    for connector, obj, rid, name, value in rows:
        out.setdefault(connector, {})[(obj, rid, name)] = json.loads(value)
    return out, {tuple(r) for r in pending}


async def audit(deployment: Deployment, out: TextIO) -> int:
    """Print the drift; returns 0 when every field holds what crm-pulse wrote, else 1."""
    state = str(deployment.runtime.state_path)
    if not Path(state).exists():
        raise ConfigError(
            [
                ConfigProblem(
                    "runtime.state_path",
                    f"no state file at {state}: nothing was written yet (run `crm-pulse run`)",
                )
            ]
        )
    written, pending = _written(state)
    connectors = build_connectors(deployment)
    drift: list[Drift] = []
    checked = 0
    try:
        for name, fields in sorted(written.items()):
            connector = connectors.get(name)
            reader = connector.reader if connector is not None else None
            if reader is None:
                out.write(f"{name}: {len(fields)} field(s) cannot be read back by this connector\n")
                continue
            try:
                held: Mapping[FieldKey, Value] = await reader.read(sorted(fields))
            except CrmPulseError as exc:
                out.write(f"{name}: could not read the fields back: {exc}\n")
                drift.append(Drift(name, ("", "", ""), None, None))
                continue
            for key, ours in sorted(fields.items()):
                checked += 1
                if (name, *key) in pending:
                    out.write(f"pending: {name} {' '.join(key)}: a newer value is being written\n")
                elif key not in held:
                    drift.append(Drift(name, key, ours, None, missing=True))
                elif not same_value(ours, held[key]):
                    drift.append(Drift(name, key, ours, held[key]))
    finally:
        for connector in connectors.values():
            with contextlib.suppress(Exception):
                await connector.aclose()
    for d in drift:
        if d.field != ("", "", ""):
            out.write(d.line() + "\n")
    if drift:
        out.write(
            f"{len(drift)} of {checked} field(s) drifted; the next change of their metric "
            "writes them again\n"
        )
        return 1
    out.write(f"no drift: {checked} field(s) hold what crm-pulse wrote\n")
    return 0
