"""The kit's field-cache refresh policy: read once, again when older than ``max_age``, and at
once for an unknown name -- at most every ``refresh_after`` seconds per scope."""

from __future__ import annotations

from crm_pulse.connectors import FieldCache


class Fields(FieldCache[None]):
    """A CRM whose field list per scope can change under the cache, counting reads."""

    def __init__(self, now: list[float]) -> None:
        super().__init__(None, max_age=600.0, refresh_after=30.0, clock=lambda: now[0])
        self.crm: dict[str, dict[str, str]] = {"deals": {"Deal type": "k1"}}
        self.stored: dict[str, dict[str, str]] = {}
        self.reads: list[tuple[str, bool]] = []

    async def read(self, scope: str, *, retry: bool) -> None:
        self.reads.append((scope, retry))
        self.stored[scope] = dict(self.crm.get(scope, {}))

    def find(self, scope: str, name: str) -> str | None:
        return self.stored.get(scope, {}).get(name)


async def test_a_scope_is_read_once_then_again_when_older_than_max_age() -> None:
    now = [1000.0]
    fields = Fields(now)
    await fields.load("deals")
    await fields.load("deals")
    assert fields.reads == [("deals", True)]
    assert fields.loaded_at == {"deals": 1000.0}
    now[0] += 599.0
    await fields.load("deals", retry=False)
    assert len(fields.reads) == 1
    now[0] += 1.0
    await fields.load("deals", retry=False)
    assert fields.reads[-1] == ("deals", False)
    assert fields.loaded_at["deals"] == 1600.0
    await fields.load("deals", refresh=True)
    assert len(fields.reads) == 3
    await fields.load("persons")
    assert fields.reads[-1] == ("persons", True)


async def test_an_unknown_name_reads_again_at_most_every_refresh_after() -> None:
    now = [1000.0]
    fields = Fields(now)
    assert await fields.resolve("deals", "Deal type") == "k1"
    fields.crm["deals"]["Score"] = "k2"  # created by `crm-pulse provision` elsewhere
    now[0] += 29.0
    assert await fields.resolve("deals", "Score") is None  # read 29 s ago: not again yet
    assert len(fields.reads) == 1
    now[0] += 1.0
    assert await fields.resolve("deals", "Score") == "k2"
    assert len(fields.reads) == 2
    assert await fields.resolve("deals", "Nope") is None  # just read: no third read
    assert await fields.resolve("deals", "Score") == "k2"  # known: never re-read
    assert len(fields.reads) == 2


async def test_reread_is_rate_limited_and_reads_a_scope_never_read() -> None:
    now = [1000.0]
    fields = Fields(now)
    await fields.reread("deals")
    assert fields.reads == [("deals", True)]
    now[0] += 10.0
    await fields.reread("deals")
    assert len(fields.reads) == 1
    now[0] += 20.0
    await fields.reread("deals")
    assert len(fields.reads) == 2
