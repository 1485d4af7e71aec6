"""A worker whose table recovery stopped moving starts again.

After a take-over, a surviving worker was seen (once in a CI run) sitting in Faust's table
recovery for minutes: Faust logged "No event received for active tp ... since recovery start"
for every changelog partition, its buffers stayed empty and the worker never processed
another message (faust-streaming issues #74, #155 and #651 report the same hang). Nothing in
the worker's own state is wrong at that point; a fresh consumer recovers in a second.

So a timer watches the recovery: while one is under way and the number of changelog records
it still has to read has not gone down for :data:`STALL_AFTER` seconds, the worker logs why
and replaces its process with a new one (same command line). That is a kill and a restart,
which the runtime is built to survive (docs/faust.md): every stage's state and positions are
durable before Faust commits, so nothing is lost and nothing counted twice.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["STALL_AFTER", "RecoveryWatchdog", "restart_process"]

STALL_AFTER = 45.0  # seconds a recovery may go without reading a changelog record

log = logging.getLogger("crm_pulse.faust")


def restart_process() -> None:
    """Replace this process with a new one running the same ``crm-pulse`` command."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "crm_pulse.cli", *sys.argv[1:]])


class RecoveryWatchdog:
    def __init__(
        self,
        app: Any,
        restart: Callable[[], None] = restart_process,
        *,
        stall_after: float = STALL_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.restart = restart
        self.stall_after = stall_after
        self.clock = clock
        self._remaining: int | None = None  # records left to read at the last progress
        self._since = 0.0  # when that was

    async def check(self) -> None:
        """One look at the recovery (a Faust timer calls it every few seconds)."""
        recovery = self.app.tables.recovery
        now = self.clock()
        if not recovery.in_recovery or self.app.should_stop:
            self._remaining = None
            return
        remaining = int(recovery.active_remaining_total())
        if self._remaining is None or remaining < self._remaining:
            self._remaining, self._since = remaining, now
            return
        if remaining > 0 and now - self._since >= self.stall_after:
            log.error(
                "table recovery read nothing for %.0f s with %d changelog records left to read"
                " (a known faust-streaming hang); this worker restarts",
                now - self._since,
                remaining,
            )
            self._remaining = None
            self.restart()
