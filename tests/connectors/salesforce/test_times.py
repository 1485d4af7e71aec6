"""The Salesforce mapper's time conversions against the ones they replaced.

``to_ms``/``to_iso`` used to parse every value with ``datetime.fromisoformat`` after rewriting
its offset, take ``timestamp() * 1000`` in floating point and format with ``strftime``. The
new ones read the common UTC form (``...000+0000``, ``...000Z``) without datetime arithmetic
and use exact integer arithmetic otherwise. They must give the same values and refuse the same
inputs with the same reasons; the one difference allowed is where the old float product lost a
millisecond (``x.404`` seconds stored as ``x.40399999...``), where the new value is the exact one.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from crm_pulse.connectors.salesforce.mapping import to_iso, to_ms
from crm_pulse.errors import DataError


# ------------------------------------------------------------ the conversions replaced (verbatim)
def _old_parse(value: Any) -> datetime | date | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    if len(text) == 10:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise DataError(f"not a date: {text[:40]!r}") from None
        if not 1900 <= day.year < 2200:
            raise DataError(f"date outside 1900..2200: {text!r}")
        return day
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise DataError(f"not a date or time: {str(value)!r}") from None
    if not 1900 <= parsed.year < 2200:
        raise DataError(f"date or time outside 1900..2200: {str(value)[:40]!r}")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def old_to_ms(value: Any) -> int | None:
    parsed = _old_parse(value)
    if parsed is None:
        return None
    if not isinstance(parsed, datetime):
        parsed = datetime(parsed.year, parsed.month, parsed.day, 12, tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def old_to_iso(value: Any) -> str | None:
    ms = old_to_ms(value)
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    )


# ------------------------------------------------------------ inputs
def exact_ms(instant: datetime) -> int:
    """Epoch ms of an aware datetime, floored, by integers only."""
    delta = instant - datetime(1970, 1, 1, tzinfo=UTC)
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return micros // 1000


def _offset_text(minutes: int, style: str) -> str:
    if minutes == 0 and style == "Z":
        return "Z"
    sign = "+" if minutes >= 0 else "-"
    hh, mm = divmod(abs(minutes), 60)
    return f"{sign}{hh:02d}{mm:02d}" if style == "basic" else f"{sign}{hh:02d}:{mm:02d}"


def samples(n: int, seed: int = 17) -> list[tuple[str, datetime | None]]:
    """(text, the instant it means or None for a date) in every form Salesforce and users send."""
    rnd = random.Random(seed)
    lo = int(datetime(1900, 1, 2, tzinfo=UTC).timestamp())
    hi = int(datetime(2199, 12, 30, tzinfo=UTC).timestamp())
    recent = (int(datetime(2000, 1, 1, tzinfo=UTC).timestamp()), 2_200_000_000)
    out: list[tuple[str, datetime | None]] = []
    for i in range(n):
        seconds = rnd.randint(*recent) if i % 3 else rnd.randint(lo, hi)
        kind = i % 8
        micros = rnd.randint(0, 999) * 1000 if kind < 5 else rnd.randint(0, 999_999)
        offset = 0 if kind < 3 else rnd.choice([-720, -480, -210, 0, 60, 330, 345, 840])
        tz = timezone(timedelta(minutes=offset))
        instant = datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=micros)
        local = instant.astimezone(tz).replace(tzinfo=None)
        if kind == 0:  # REST
            text = local.isoformat(timespec="milliseconds") + "+0000"
        elif kind == 1:  # Outbound Messages
            text = local.isoformat(timespec="milliseconds") + "Z"
        elif kind == 2:  # no fraction, no zone (read as UTC)
            instant = instant.replace(microsecond=0)
            text = instant.replace(tzinfo=None).isoformat(timespec="seconds")
        elif kind in (3, 4):  # another offset, basic or extended
            style = "basic" if kind == 3 else "extended"
            text = local.isoformat(timespec="milliseconds") + _offset_text(offset, style)
        elif kind == 5:  # microseconds
            text = local.isoformat(timespec="microseconds") + _offset_text(offset, "basic")
        elif kind == 6:  # a date field
            text = instant.date().isoformat()
            instant = None  # type: ignore[assignment]
        else:  # a tenth, with Z
            instant = instant.replace(microsecond=micros // 100_000 * 100_000)
            text = instant.replace(tzinfo=None).isoformat(timespec="microseconds")[:21] + "Z"
        out.append((text, instant))
    return out


BAD = [
    "2026-13-01T00:00:00.000+0000",
    "2026-02-30T00:00:00.000+0000",
    "2026-01-01T24:00:00.000Z",
    "2026-01-01T09:60:00.000Z",
    "1899-12-31T23:59:59.999+0000",
    "2200-01-01T00:00:00.000Z",
    "2026-W01-1T09:00:00.000+0000",
    "2026-13-01",
    "1899-12-31",
    "tomorrow",
    "2026-01-01T09:00:00.000+00",
    " 2026-01-01T09:00:00.000+0000 ",
    "2026-01-01T09:00:00.000-0000",
    "2026-01-01T09:00:00.000+0530",
    "2026-W01-1",
    "20260102",
    "2026-01-02 09:00:00",
    20260102,
]


@pytest.mark.parametrize("value", [None, ""])
def test_nulls_stay_null(value: Any) -> None:
    assert to_ms(value) is None and to_iso(value) is None


def _outcome(fn: Any, value: Any) -> tuple[str, Any]:
    try:
        return ("ok", fn(value))
    except DataError as exc:
        return ("error", exc.reason)


@pytest.mark.parametrize("value", BAD)
def test_odd_and_bad_values_get_what_they_got_before(value: Any) -> None:
    assert _outcome(to_ms, value) == _outcome(old_to_ms, value)
    assert _outcome(to_iso, value) == _outcome(old_to_iso, value)


def test_many_times_convert_as_before_and_exactly() -> None:
    cases = samples(60_000)
    float_slips = 0
    for text, instant in cases:
        new_ms, new_iso = to_ms(text), to_iso(text)
        old_ms, old_iso = old_to_ms(text), old_to_iso(text)
        assert new_ms is not None and new_iso is not None
        if instant is not None:
            assert new_ms == exact_ms(instant), text
        else:  # a date: noon UTC
            assert new_iso == f"{text}T12:00:00.000Z"
        # the canonical text is the ms, rendered
        assert (
            new_iso
            == (datetime(1970, 1, 1) + timedelta(milliseconds=new_ms)).isoformat(
                timespec="milliseconds"
            )
            + "Z"
        )
        if new_ms != old_ms:
            # only where the old float product slipped: one ms, and the old value is the
            # truncated float (the exact value is the new one, checked above)
            assert instant is not None and abs(new_ms - old_ms) == 1, text
            assert old_ms == int(instant.timestamp() * 1000)
            float_slips += 1
        else:
            assert new_iso == old_iso, text
    # the slips are rare (about 0.5 % of recent millisecond times, 1.8 % of these samples,
    # which include microseconds and times before 1970); everything else is identical
    assert 0 < float_slips < len(cases) // 25


def test_salesforce_forms_mean_the_same_instant() -> None:
    rest, outbound = "2026-01-02T09:00:00.404+0000", "2026-01-02T09:00:00.404Z"
    assert to_iso(rest) == to_iso(outbound) == "2026-01-02T09:00:00.404Z"
    assert to_ms(rest) == to_ms(outbound) == 1767344400404
    assert to_iso("2026-01-02T10:30:00.404+0130") == "2026-01-02T09:00:00.404Z"
    assert to_iso("2026-01-02") == "2026-01-02T12:00:00.000Z"
