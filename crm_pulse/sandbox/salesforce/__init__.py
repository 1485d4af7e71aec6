"""A simulated Salesforce org: :mod:`.org` serves the REST, Bulk 2.0 and Tooling APIs and sends
Outbound Messages; :mod:`.soql` is the SOQL subset it understands."""

from .model import KEY_PREFIXES, STANDARD_FIELDS, sf_time
from .org import FakeSalesforce
from .soql import SoqlError, parse_soql

__all__ = [
    "KEY_PREFIXES",
    "STANDARD_FIELDS",
    "FakeSalesforce",
    "SoqlError",
    "parse_soql",
    "sf_time",
]
