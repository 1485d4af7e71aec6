"""The SOQL subset the fake Salesforce org understands, and how it evaluates it.

``SELECT fields FROM object [WHERE ...] [ORDER BY ...] [LIMIT n]`` and ``SELECT COUNT()``;
comparisons joined by AND or OR, parentheses, NOT; datetime, date, string, number, boolean and
null literals. Anything else is a :class:`SoqlError` with Salesforce's error code
(``MALFORMED_QUERY``, ``INVALID_FIELD``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "BoolOp",
    "Cmp",
    "Query",
    "SoqlError",
    "check_types",
    "evaluate",
    "parse_soql",
    "sort_value",
    "time_ms",
]


def time_ms(text: str) -> int:
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    elif len(value) > 5 and value[-5] in "+-" and value[-4:].isdigit():
        value = f"{value[:-2]}:{value[-2:]}"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


# ---------------------------------------------------------------------- SOQL subset


class SoqlError(Exception):
    """A query the fake refuses, with Salesforce's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:\d{2}))
    | (?P<date>\d{4}-\d{2}-\d{2})
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),*])
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "ORDER",
    "BY",
    "ASC",
    "DESC",
    "LIMIT",
    "NULLS",
    "FIRST",
    "LAST",
    "TRUE",
    "FALSE",
    "NULL",
}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str


def _tokens(soql: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    text = soql.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            bad = text[pos:].strip().split(" ", 1)[0]
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{bad}'")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "word" and value.upper() in _KEYWORDS:
            kind, value = "kw", value.upper()
        out.append(_Tok(kind, value))
        pos = m.end()
    return out


@dataclass(frozen=True)
class Cmp:
    field: str
    op: str
    value: Any
    kind: str


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND, OR, NOT
    parts: tuple[Any, ...]


@dataclass(frozen=True)
class Query:
    fields: tuple[str, ...]
    sobject: str
    where: Any
    order: tuple[tuple[str, bool, bool], ...]  # (field, descending, nulls last)
    limit: int | None
    count: bool = False


class _Parser:
    def __init__(self, soql: str) -> None:
        self.toks = _tokens(soql)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise SoqlError("MALFORMED_QUERY", "unexpected end of query")
        self.i += 1
        return tok

    def expect_kw(self, *words: str) -> str:
        tok = self.take()
        if tok.kind != "kw" or tok.text not in words:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{tok.text}'")
        return tok.text

    def is_kw(self, word: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "kw" and tok.text == word

    def ident(self) -> str:
        tok = self.take()
        if tok.kind != "word":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{tok.text}'")
        return tok.text

    def query(self) -> Query:
        self.expect_kw("SELECT")
        fields = [self.ident()]
        count = fields[0].upper() == "COUNT" and self.peek() == _Tok("punct", "(")
        if count:  # SELECT COUNT() FROM ...: the number of rows, no records
            self.take()
            if self.take() != _Tok("punct", ")"):
                raise SoqlError("MALFORMED_QUERY", "only COUNT() is supported")
            fields = []
        while not count and self.peek() == _Tok("punct", ","):
            self.take()
            fields.append(self.ident())
        self.expect_kw("FROM")
        sobject = self.ident()
        where = None
        if self.is_kw("WHERE"):
            self.take()
            where = self.condition()
        order: list[tuple[str, bool, bool]] = []
        if self.is_kw("ORDER"):
            self.take()
            self.expect_kw("BY")
            while True:
                name = self.ident()
                desc = False
                if self.is_kw("ASC") or self.is_kw("DESC"):
                    desc = self.take().text == "DESC"
                nulls_last = desc
                if self.is_kw("NULLS"):
                    self.take()
                    nulls_last = self.expect_kw("FIRST", "LAST") == "LAST"
                order.append((name, desc, nulls_last))
                if self.peek() == _Tok("punct", ","):
                    self.take()
                    continue
                break
        limit = None
        if self.is_kw("LIMIT"):
            self.take()
            tok = self.take()
            if tok.kind != "number" or not tok.text.isdigit():
                raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{tok.text}'")
            limit = int(tok.text)
        rest = self.peek()
        if rest is not None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{rest.text}'")
        return Query(tuple(fields), sobject, where, tuple(order), limit, count)

    def condition(self) -> Any:
        parts = [self.atom()]
        joiner: str | None = None
        while self.is_kw("AND") or self.is_kw("OR"):
            word = self.take().text
            if joiner is not None and word != joiner:
                raise SoqlError(
                    "MALFORMED_QUERY",
                    "unexpected token: 'OR' (use parentheses when mixing AND and OR)"
                    if word == "OR"
                    else "unexpected token: 'AND' (use parentheses when mixing AND and OR)",
                )
            joiner = word
            parts.append(self.atom())
        return parts[0] if joiner is None else BoolOp(joiner, tuple(parts))

    def atom(self) -> Any:
        if self.peek() == _Tok("punct", "("):
            self.take()
            inner = self.condition()
            if self.take() != _Tok("punct", ")"):
                raise SoqlError("MALFORMED_QUERY", "expected ')'")
            return inner
        if self.is_kw("NOT"):
            self.take()
            return BoolOp("NOT", (self.atom(),))
        name = self.ident()
        op = self.take()
        if op.kind != "op":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{op.text}'")
        lit = self.take()
        if lit.kind == "kw" and lit.text in ("TRUE", "FALSE"):
            return Cmp(name, op.text, lit.text == "TRUE", "boolean")
        if lit.kind == "kw" and lit.text == "NULL":
            return Cmp(name, op.text, None, "null")
        if lit.kind == "string":
            return Cmp(name, op.text, re.sub(r"\\(.)", r"\1", lit.text[1:-1]), "string")
        if lit.kind == "datetime":
            return Cmp(name, op.text, time_ms(lit.text), "datetime")
        if lit.kind == "date":
            return Cmp(name, op.text, lit.text, "date")
        if lit.kind == "number":
            return Cmp(name, op.text, float(lit.text), "number")
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{lit.text}'")


def parse_soql(soql: str) -> Query:
    """Parse the SOQL subset; SoqlError (MALFORMED_QUERY) for anything else."""
    return _Parser(soql).query()


_LITERAL_KINDS = {
    "datetime": {"datetime"},
    "date": {"date"},
    "boolean": {"boolean"},
    "currency": {"number"},
    "percent": {"number"},
    "double": {"number"},
}


def check_types(cond: Any, schema: Mapping[str, str], sobject: str) -> None:
    if isinstance(cond, BoolOp):
        for part in cond.parts:
            check_types(part, schema, sobject)
        return
    if cond is None:
        return
    ftype = schema.get(cond.field)
    if ftype is None:
        raise SoqlError("INVALID_FIELD", f"No such column '{cond.field}' on entity '{sobject}'.")
    if cond.kind == "null":
        if cond.op not in ("=", "!=", "<>"):
            raise SoqlError("MALFORMED_QUERY", f"invalid operator on null for {cond.field}")
        return
    wanted = _LITERAL_KINDS.get(ftype, {"string"})
    if cond.kind not in wanted:
        quoted = " and should not be enclosed in quotes" if cond.kind == "string" else ""
        raise SoqlError(
            "INVALID_FIELD",
            f"value of filter criterion for field '{cond.field}' must be of type {ftype}{quoted}",
        )
    if ftype == "boolean" and cond.op not in ("=", "!=", "<>"):
        raise SoqlError("INVALID_FIELD", f"invalid operator {cond.op} for boolean {cond.field}")


def _compare(value: Any, op: str, other: Any) -> bool:
    if other is None or value is None:
        same = value is None and other is None
        return same if op == "=" else (not same) if op in ("!=", "<>") else False
    if op == "=":
        return bool(value == other)
    if op in ("!=", "<>"):
        return bool(value != other)
    if op == "<":
        return bool(value < other)
    if op == "<=":
        return bool(value <= other)
    if op == ">":
        return bool(value > other)
    return bool(value >= other)


def _typed(value: Any, ftype: str) -> Any:
    if value is None:
        return None
    if ftype == "datetime":
        return time_ms(str(value))
    if ftype in ("currency", "percent", "double"):
        return float(value)
    return value


def sort_value(name: str, ftype: str, record: Mapping[str, Any]) -> Any:
    return _typed(record.get(name), ftype)


def evaluate(cond: Any, record: Mapping[str, Any], schema: Mapping[str, str]) -> bool:
    if cond is None:
        return True
    if isinstance(cond, BoolOp):
        if cond.op == "NOT":
            return not evaluate(cond.parts[0], record, schema)
        results = (evaluate(p, record, schema) for p in cond.parts)
        return all(results) if cond.op == "AND" else any(results)
    ftype = schema[cond.field]
    return _compare(_typed(record.get(cond.field), ftype), cond.op, cond.value)
