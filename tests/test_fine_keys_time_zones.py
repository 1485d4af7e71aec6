"""Day and week keys in time zones whose offsets are not multiples of 15 minutes.

The engine caches the (day, week) keys of a time per 15-minute slot of UTC. A day boundary of
Europe/Amsterdam before 1937 (+0:19:32), Africa/Monrovia until 1972 (-0:44:30) or any zone's
local mean time before ~1900 falls inside such a slot, and an ambiguous hour may cross local
midnight (America/St_Johns fell back at 00:01 from 1987 to 2010): a key must still be the
window whose calendar bounds hold the time, whichever time of its slot filled the cache.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_pulse.metrics import (
    Engine,
    Event,
    Window,
    WindowSpec,
    build_catalog,
    builtin_definitions,
    reference_report,
)

ZONES = [
    "Africa/Monrovia",
    "Europe/Amsterdam",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "America/St_Johns",
    "Australia/Lord_Howe",
    "Europe/Dublin",
    "UTC",
]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIRST = (datetime(1900, 1, 2, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
LAST = (datetime(2100, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
DAY = 86_400_000
SLOT = 900_000
FINE = (WindowSpec("day"), WindowSpec("week"))


@cache
def transitions(zone: str) -> tuple[int, ...]:
    """Epoch ms of each change of the zone's UTC offset between 1900 and 2100 (to the ms)."""
    tz = ZoneInfo(zone)

    def offset(ms: int) -> timedelta | None:
        return (_EPOCH + timedelta(milliseconds=ms)).astimezone(tz).utcoffset()

    out = []
    t, before = FIRST, offset(FIRST)
    step = DAY // 2  # no zone changes its offset twice within 12 hours
    while t < LAST:
        nxt = min(t + step, LAST)
        after = offset(nxt)
        if after != before:
            lo, hi = t, nxt  # offset(lo) == before != offset(hi)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset(mid) == before:
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        t, before = nxt, after
    return tuple(out)


@cache
def odd_eras(zone: str) -> tuple[tuple[int, int], ...]:
    """[start, end) of the spans of 1900-2100 in which the zone's offset is not a multiple
    of 15 minutes (its midnights fall inside 15-minute slots of UTC)."""
    tz = ZoneInfo(zone)
    edges = (FIRST, *transitions(zone), LAST)
    out = []
    for start, end in pairwise(edges):
        offset = (_EPOCH + timedelta(milliseconds=start)).astimezone(tz).utcoffset()
        assert offset is not None
        if offset % timedelta(minutes=15) and end - start > 10 * DAY:
            out.append((start + 4 * DAY, end - 5 * DAY))
    return tuple(out)


@cache
def catalog(zone: str):  # type: ignore[no-untyped-def]
    return build_catalog(builtin_definitions(), timezone=zone)


def _near(zone: str, pick: int, where: int, delta: int) -> int:
    """A time ``delta`` ms from a local midnight (``where`` even) or from one of the zone's
    offset changes (``where`` odd), picked by ``pick``, between 1900 and 2100."""
    cal = catalog(zone).calendar
    changes = transitions(zone)
    if where % 2 and changes:
        anchor = changes[pick % len(changes)]
    else:
        t = FIRST + pick % (LAST - FIRST)
        anchor = cal.bounds(Window(WindowSpec("day"), cal.local_date(t).toordinal()))[0]
    return min(max(anchor + delta, FIRST), LAST)


def _holds(zone: str, kind: str, index: int, t: int) -> bool:
    cal = catalog(zone).calendar
    start, end = cal.bounds(Window(WindowSpec(kind), index))
    return start <= t < end


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zone=st.sampled_from(ZONES),
    pick=st.integers(0, 2**62),
    where=st.integers(0, 3),
    delta=st.integers(-2 * SLOT, 2 * SLOT),
    other=st.integers(0, SLOT - 1),
)
def test_cached_day_and_week_keys_are_the_windows_holding_the_time(
    zone: str, pick: int, where: int, delta: int, other: int
) -> None:
    """The key the cached path gives for ``t``, after another time of ``t``'s 15-minute slot
    filled the cache (and before), is the day / week whose calendar bounds hold ``t``."""
    t = _near(zone, pick, where, delta)
    first = t // SLOT * SLOT + other  # fills the cache for t's slot
    for order in ((first, t), (t, first)):
        engine = Engine(catalog(zone), windows=FINE)
        for when in order:
            keys = dict(engine._fine_keys(when))
            assert set(keys) == {"day", "week"}
            for kind, index in keys.items():
                assert _holds(zone, kind, index, when), (zone, kind, index, when)


def test_a_slot_split_by_amsterdam_s_midnight_in_1930() -> None:
    """A fixed case: Amsterdam's day of
    1930-01-02 starts at 23:40:28 UTC (+0:19:32), inside the slot 23:30-23:45."""
    zone = "Europe/Amsterdam"
    cal = catalog(zone).calendar
    start = cal.bounds(cal.parse_label("1930-01-02"))[0]
    assert datetime.fromtimestamp(start / 1000, UTC).strftime("%H:%M:%S") == "23:40:28"
    engine = Engine(catalog(zone), windows=FINE)
    before, after = start - 1000, start + 1000
    assert before // SLOT == after // SLOT
    assert dict(engine._fine_keys(before))["day"] == cal.parse_label("1930-01-01").index
    assert dict(engine._fine_keys(after))["day"] == cal.parse_label("1930-01-02").index


def test_st_johns_fall_back_across_midnight() -> None:
    """America/St_Johns fell back at 00:01 (1987-2010): 23:01-23:59 of the old day comes
    again after the new day has begun. Windows are intervals [start, end): those times are in
    the new day, as the calendar's bounds (and months, and the reference) say."""
    zone = "America/St_Johns"
    cal = catalog(zone).calendar
    new_day = cal.parse_label("2005-10-30")
    start, end = cal.bounds(new_day)
    t = start + 30 * 60_000  # 23:30 of 10-29 on the wall clock, after 10-30 began
    assert cal.local_date(t).isoformat() == "2005-10-29" and start < t < end
    engine = Engine(catalog(zone), windows=FINE)
    assert dict(engine._fine_keys(t))["day"] == new_day.index
    assert cal.index_of("day", t) == new_day.index


def _iso(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _events(zone: str, seed: int) -> tuple[list[Event], int]:
    """Deals, activities and tickets whose times sit minutes either side of the zone's local
    midnights or offset changes, within a few days of one place in 1900-2100: often in a
    span whose offset is not a multiple of 15 minutes, or at an offset change."""
    rng = random.Random(seed)
    cal = catalog(zone).calendar
    changes, eras = transitions(zone), odd_eras(zone)
    pick = rng.random()
    if eras and pick < 0.5:
        center = rng.randrange(*rng.choice(eras))
    elif changes and pick < 0.8:
        center = rng.choice(changes)
    else:
        center = rng.randrange(FIRST + 10 * DAY, LAST - 30 * DAY)
    day = cal.local_date(center).toordinal()

    def when() -> str:
        if rng.random() < 0.3:
            t = center + rng.randrange(-4 * SLOT, 4 * SLOT)
        else:
            d = day + rng.randint(-1, 1)
            t = cal.bounds(Window(WindowSpec("day"), d))[0] + rng.randrange(-SLOT, SLOT)
        return _iso(t)

    events = []
    for rid in range(rng.randint(2, 10)):
        obj = rng.choice(["deal", "activity", "ticket"])
        for version in range(1, rng.randint(2, 4)):
            if rng.random() < 0.15:
                raw: dict[str, object] = {"op": "delete"}
            elif obj == "deal":
                fields = {
                    "status": rng.choice(["won", "won", "lost", "open"]),
                    "type": rng.choice(["new", "upsell", "renewal"]),
                    "amount": rng.choice(["100", "2500", "7"]),
                    "owner_id": rng.choice(["u1", "u2"]),
                    "created_at": when(),
                    "closed_at": when(),
                    "stage": "s1",
                    "stage_entered_at": when(),
                }
                raw = {"op": "upsert", "fields": fields}
            elif obj == "activity":
                fields = {
                    "owner_id": rng.choice(["u1", "u2"]),
                    "account_id": "a1",
                    "type": rng.choice(["call", "email", "meeting"]),
                    "occurred_at": when(),
                }
                raw = {"op": "upsert", "fields": fields}
            else:
                fields = {
                    "owner_id": rng.choice(["u1", "u2"]),
                    "account_id": "a1",
                    "status": rng.choice(["open", "closed"]),
                    "created_at": when(),
                    "closed_at": when(),
                    "first_response_at": rng.choice([None, when()]),
                }
                raw = {"op": "upsert", "fields": fields}
            raw.update(source="s", object=obj, id=f"{obj}{rid}", version=version)
            events.append(Event.model_validate(raw))
    as_of = cal.bounds(Window(WindowSpec("day"), day + 5))[0] + rng.randrange(0, DAY)
    return events, as_of


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zone=st.sampled_from(ZONES), seed=st.integers(0, 10**6), order=st.integers(0, 10**6))
def test_days_and_weeks_in_any_zone_and_era_equal_the_reference(
    zone: str, seed: int, order: int
) -> None:
    """Incremental == recompute for days, weeks and months, with times minutes either side of
    local midnights and offset changes in 1900-2100, in zones whose offsets (now or once) are
    not multiples of 15 minutes."""
    events, as_of = _events(zone, seed)
    windows = (WindowSpec("day"), WindowSpec("week"), WindowSpec("month"))
    expected = [r.to_json() for r in reference_report(catalog(zone), events, as_of, windows)]
    rng = random.Random(order)
    shuffled = events + rng.sample(events, len(events) // 3)
    rng.shuffle(shuffled)
    engine = Engine(catalog(zone), windows=windows)
    engine.advance(as_of)
    engine.apply_all(shuffled)
    assert [r.to_json() for r in engine.report(as_of)] == expected
