"""Each worker's own data directory, so several workers can start from one directory.

RocksDB locks its files: two workers that share a table directory crash at start (``IO error:
While lock file: .../records-4.db/LOCK``). :func:`claim_data_dir` gives every worker process of a
machine a directory of its own under ``runtime.faust.data_dir/<app id>``: the first of
``worker-0``, ``worker-1``, ... that no running worker holds, locked (``flock``) for as long as the
process lives. A restarted worker takes the first free one again, so on a machine that runs one
worker it finds its tables (and their changelog offsets) where it left them; the lock is the
kernel's, so a worker killed with SIGKILL leaves no stale lock behind.
"""

from __future__ import annotations

import fcntl
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["DataDir", "claim_data_dir"]


@dataclass
class DataDir:
    path: Path
    lock: IO[str]  # held open: closing it (or the process ending) frees the directory

    def release(self) -> None:
        self.lock.close()


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
        return DataDir(path, lock)
    raise AssertionError("unreachable")
