"""The recovery watchdog: a worker whose table recovery reads nothing for too long restarts."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from crm_pulse.streams.faust.watchdog import RecoveryWatchdog


class Recovery:
    def __init__(self) -> None:
        self.in_recovery = False
        self.remaining = 0

    def active_remaining_total(self) -> int:
        return self.remaining


def _watchdog() -> tuple[RecoveryWatchdog, Recovery, list[float], list[int]]:
    recovery = Recovery()
    app = SimpleNamespace(tables=SimpleNamespace(recovery=recovery), should_stop=False)
    now = [0.0]
    restarts: list[int] = []
    dog = RecoveryWatchdog(app, lambda: restarts.append(1), stall_after=30.0, clock=lambda: now[0])
    return dog, recovery, now, restarts


def test_a_recovery_that_reads_nothing_for_too_long_restarts_the_worker() -> None:
    dog, recovery, now, restarts = _watchdog()

    def at(t: float) -> None:
        now[0] = t
        asyncio.run(dog.check())

    recovery.in_recovery, recovery.remaining = True, 500
    at(0)
    recovery.remaining = 200  # reading: progress
    at(20)
    at(45)  # 25 s without progress: patience
    assert restarts == []
    at(50)  # 30 s: stalled
    assert restarts == [1]


def test_a_slow_recovery_that_moves_and_an_idle_worker_are_left_alone() -> None:
    dog, recovery, now, restarts = _watchdog()
    for t in range(0, 300, 5):  # not in recovery: nothing to watch
        now[0] = t
        asyncio.run(dog.check())
    recovery.in_recovery, recovery.remaining = True, 10_000
    for t in range(300, 900, 20):  # a long recovery that keeps reading
        recovery.remaining -= 10
        now[0] = t
        asyncio.run(dog.check())
    recovery.remaining = 0  # read to the end, waiting for Faust to finish: not a stall
    for t in range(900, 1000, 20):
        now[0] = t
        asyncio.run(dog.check())
    assert restarts == []
    recovery.in_recovery = False  # done; a later recovery starts a fresh count
    now[0] = 2000
    asyncio.run(dog.check())
    recovery.in_recovery, recovery.remaining = True, 50
    now[0] = 2010
    asyncio.run(dog.check())
    now[0] = 2035
    asyncio.run(dog.check())
    assert restarts == []


def test_the_restart_runs_the_same_crm_pulse_command_in_this_process() -> None:
    import subprocess
    import sys
    from importlib.metadata import version

    script = (
        "import os, sys; sys.argv = ['crm-pulse', '--version']; print(os.getpid(), flush=True)\n"
        "from crm_pulse.streams.faust.watchdog import restart_process; restart_process()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert out[0].isdigit() and out[1:] == ["crm-pulse", version("crm-pulse")]
