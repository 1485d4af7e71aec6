"""Canonical change events (metrics-spec section 1) and the typing of their fields.

An :class:`Event` is what every connector produces and what the engine consumes. Its
``fields`` are kept exactly as received (unknown fields included); :attr:`Event.values`
holds the same fields typed for computation:

* times (ISO 8601 with an offset or ``Z``) become integer milliseconds since the epoch;
* amounts and numbers become integer micro-units (value x 1,000,000, rounded half-even),
  so sums and their retractions are exact whatever the order of events;
* dates (``period_start``) become :class:`datetime.date`;
* strings are interned, since the same owner, account and stage ids repeat millions of times.

A field that cannot be typed makes the whole event invalid, with a message naming the field.

Every event is also held to bounds (see :data:`LIMITS`), wherever it comes from (webhooks, the
ingress, sources, files, the log): times and dates between 1900-01-01 and 2200-01-01 (UTC),
finite amounts below 10^15 in magnitude written in at most 40 characters, strings that are
valid Unicode text (no lone surrogates, so they can always be written as UTF-8) and of bounded
length, a bounded number of fields nested at most 16 deep. An event outside them is invalid with
a message naming the field, like any other bad field, so it is refused (or quarantined) instead
of breaking arithmetic, time-zone conversion or the log's JSON further down.
"""

from .canonical import canonical_json, supersedes
from .limits import LIMITS, MAX_ID, MAX_NAME, MAX_VERSION, check_fields, check_text
from .model import Event
from .schema import BUILTIN_OBJECTS, ID_FIELD, SOURCE_FIELD, FieldType, ObjectSchema, RecordKey
from .values import MICRO, parse_amount, parse_date, parse_time, type_fields

__all__ = [
    "BUILTIN_OBJECTS",
    "ID_FIELD",
    "LIMITS",
    "MAX_ID",
    "MAX_NAME",
    "MAX_VERSION",
    "MICRO",
    "SOURCE_FIELD",
    "Event",
    "FieldType",
    "ObjectSchema",
    "RecordKey",
    "canonical_json",
    "check_fields",
    "check_text",
    "parse_amount",
    "parse_date",
    "parse_time",
    "supersedes",
    "type_fields",
]
