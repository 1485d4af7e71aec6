"""Each worker's own data directory, so several workers can start from one directory, and the
worker's identity in the consumer group (static membership), which lives with it.

RocksDB locks its files: two workers that share a table directory crash at start (``IO error:
While lock file: .../records-4.db/LOCK``). :func:`claim_data_dir` gives every worker process of a
machine a directory of its own under ``runtime.faust.data_dir/<app id>``: the first of
``worker-0``, ``worker-1``, ... that no running worker holds, locked (``flock``) for as long as the
process lives. A restarted worker takes the first free one again, so on a machine that runs one
worker it finds its tables (and their changelog offsets) where it left them; the lock is the
kernel's, so a worker killed with SIGKILL leaves no stale lock behind, and the lock file is not
inherited across ``exec`` (the watchdog's restart, :mod:`.watchdog`, claims it again).

**Group instance id** (KIP-345 static membership, ``runtime.faust.static_membership``). The
directory also holds the worker's ``group.instance.id``: ``<host>-worker-<n>-<token>``, the
token random and written once (``instance-id``, under the lock) when the directory is first
claimed. So the id follows the tables: the same after a restart on this machine (SIGKILL, crash,
the watchdog's ``exec``), never held by two live workers of one machine (the ``flock``), and two
machines differ by host name and by token (a fresh directory elsewhere draws a new token, even
under the same host name). A worker that comes back with its id before the broker's session
timeout takes its partitions back without a rebalance, with its own tables.
"""

from __future__ import annotations

import fcntl
import itertools
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["DataDir", "claim_data_dir", "instance_id"]

INSTANCE_FILE = "instance-id"
_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9._-]+")  # Kafka's rule for group.instance.id (as topics)


@dataclass
class DataDir:
    path: Path
    lock: IO[str]  # held open: closing it (or the process ending) frees the directory

    def release(self) -> None:
        self.lock.close()

    @property
    def instance_id(self) -> str:
        """This directory's group instance id (written when the directory was first claimed)."""
        return instance_id(self.path)


def claim_data_dir(base: Path, app_id: str) -> DataDir:
    """The first ``base/<app_id>/worker-<n>`` no other process holds, locked by this one."""
    root = base / app_id
    root.mkdir(parents=True, exist_ok=True)
    for n in itertools.count():
        path = root / f"worker-{n}"
        path.mkdir(exist_ok=True)
        lock = (path / "worker.lock").open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        instance_id(path)  # drawn now, under the lock, if the directory has none yet
        return DataDir(path, lock)
    raise AssertionError("unreachable")


def instance_id(path: Path) -> str:
    """The group instance id kept in a claimed worker directory; drawn on first use.

    Call it only while holding the directory's lock (:func:`claim_data_dir`)."""
    stored = path / INSTANCE_FILE
    try:
        text = stored.read_text().strip()
    except FileNotFoundError:
        text = ""
    if text and not _NOT_ALLOWED.search(text) and len(text) <= 249:
        return text
    host = _NOT_ALLOWED.sub("-", socket.gethostname()).strip("-.")[:100] or "host"
    text = f"{host}-{path.name}-{secrets.token_hex(4)}"
    partial = stored.with_name(INSTANCE_FILE + ".partial")
    partial.write_text(text + "\n")
    partial.replace(stored)  # whole or absent, even if the worker dies right here
    return text
