"""Reading canonical events from JSONL: every bad line is reported with its number and reason."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import DataError
from ..safejson import MAX_DEPTH, depth_of
from .decode import decode_json, trusted_event
from .events import Event

__all__ = ["LineError", "parse_line", "read_events", "read_events_file"]


@dataclass(frozen=True)
class LineError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def _reason(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        return f"{loc}: missing"
    if err["type"] == "literal_error":
        return f"{loc}: expected 'upsert' or 'delete', got {err.get('input')!r}"
    return f"{loc}: {msg}" if loc else msg


def parse_line(text: str, line: int) -> Event:
    """One JSONL line -> Event; raises DataError(reason, where='line N')."""
    if text.count("[") + text.count("{") > MAX_DEPTH and depth_of(text.encode()) > MAX_DEPTH:
        raise DataError(f"JSON nested deeper than {MAX_DEPTH} levels", f"line {line}")
    event = trusted_event(decode_json(text))
    if event is not None:
        return event
    # anything unusual (or wrong) is read the former way, which words what is wrong
    data = _json_loads(text, line)
    if not isinstance(data, dict):
        raise DataError(f"expected a JSON object, got {type(data).__name__}", f"line {line}")
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        raise DataError(_reason(exc), f"line {line}") from None


def _json_loads(text: str, line: int) -> Any:
    """The standard library's reading, with its error messages (NaN, lone surrogates and
    long integers reach validation, which words what is wrong)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"not valid JSON: {exc.msg} at column {exc.colno}", f"line {line}"
        ) from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise DataError(f"a number is too long ({str(exc)[:60]})", f"line {line}") from None


def read_events(
    lines: Iterable[str], *, strict: bool = False, errors: list[LineError] | None = None
) -> Iterator[Event]:
    """Yield the good events; bad lines go to ``errors`` (or raise at the first if ``strict``)."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield parse_line(text, number)
        except DataError as exc:
            if strict:
                raise
            if errors is not None:
                errors.append(LineError(number, exc.reason))


def read_events_file(
    path: str | Path, *, strict: bool = False, errors: list[LineError] | None = None
) -> Iterator[Event]:
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        yield from read_events(handle, strict=strict, errors=errors)
