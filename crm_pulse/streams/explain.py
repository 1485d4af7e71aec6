"""``crm-pulse explain --config FILE``: which records make a number, from a running (or
stopped) deployment's state: the embedded runtime's state file, or for the Faust runtime the
``records`` table's changelog topic in Kafka (:mod:`.faust.changelog`, read without joining the
workers' group). The state holds each record's last applied fields (those its measures read)
and stage history; :func:`record_states` turns them into the record states
:func:`crm_pulse.metrics.explain.explain` reads. Nothing is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..config.models import Deployment
from ..errors import ConfigError
from ..metrics.catalog import Catalog
from ..metrics.explain import Explanation, explain
from ..metrics.measures import Group
from ..metrics.reference import RecordState
from ..metrics.state import Key
from .embedded.database import Database
from .embedded.rebuild import rebuild_due
from .embedded.state import SQLiteStore

__all__ = ["explain_deployment", "record_states"]


def record_states(catalog: Catalog, items: Iterable[tuple[Key, Any]]) -> Iterator[RecordState]:
    """Record states from engine state entries (``("r", source, object, id)`` keys)."""
    for key, state in items:
        if key[0] != "r" or state[1] is None:
            continue  # not a record, or deleted
        obj = key[2]
        reads = catalog.reads.get(obj)
        if reads is None or len(reads) != len(state[1]):
            continue  # an object no metric of this catalog reads
        values = dict(zip(reads, state[1], strict=True))
        values.setdefault("source", key[1])
        stays = catalog.stays.get(obj)
        history = (
            [{stays.field: h[1], stays.entered: h[2]} for h in (state[3] or ())]
            if stays is not None
            else []
        )
        yield (key[1], key[2], key[3]), values, history


def explain_deployment(
    deployment: Deployment, metric: str, window: str, group: Group, as_of: int
) -> Explanation:
    """Explain a value from the deployment's state (read only): the embedded runtime's state
    file, or a Faust deployment's ``records`` table in Kafka."""
    catalog = deployment.catalog()
    if deployment.runtime.kind == "faust":
        from .faust.definitions import tables_differ

        differ = asyncio.run(tables_differ(deployment))
        if differ is not None:  # the records hold the fields other definitions read
            raise ConfigError(
                f"runtime.faust.app_id: metric definitions changed since the tables of app "
                f"{deployment.runtime.faust.app_id!r} were built ({differ}); explain from the "
                "events instead (crm-pulse explain with an events file)"
            )
        items = asyncio.run(_faust_state(deployment))
        states = list(record_states(catalog, items))
        return explain(catalog, states, metric, window, group, as_of, states=True)
    path = Path(deployment.runtime.state_path)
    if not path.exists():
        raise ConfigError(f"runtime.state_path: no state file at {path} (has the deployment run?)")
    due = rebuild_due(str(path), catalog, deployment.window_specs())
    if due is not None:  # its records hold the fields other definitions read
        raise ConfigError(
            f"runtime.state_path: {path}: {due}. Start the runtime once, or explain from the "
            "log: crm-pulse events export --config FILE > events.jsonl, then crm-pulse explain "
            "with events.jsonl"
        )
    db = Database(path)
    try:
        store = SQLiteStore()
        db.call(lambda: store.load(db.conn))
        states = list(record_states(catalog, store.items()))
    finally:
        db.close()
    return explain(catalog, states, metric, window, group, as_of, states=True)


async def _faust_state(deployment: Deployment) -> list[tuple[Key, Any]]:
    """The engine state held by a Faust deployment's ``records`` table (its changelog)."""
    from aiokafka.errors import KafkaError

    from .faust.app import kafka_servers
    from .faust.changelog import changelog_topic, read_changelog, state_items

    settings = deployment.runtime.faust
    topic = changelog_topic(settings.app_id, "records")
    try:
        entries = await read_changelog(kafka_servers(settings.broker), topic, settings.partitions)
    except (LookupError, TimeoutError) as exc:
        raise ConfigError(f"runtime.faust: {exc}") from None
    except (KafkaError, OSError) as exc:
        raise ConfigError(f"runtime.faust.broker: cannot read {topic}: {exc}") from None
    return list(state_items(entries))
