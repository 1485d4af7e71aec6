"""A small GraphQL reader for the simulators: documents with one operation, no fragments.

It reads what crm-pulse's clients send (and what a person would type in monday's playground):
``query``/``mutation`` with an optional name and variable definitions, fields with aliases,
arguments (variables, strings, numbers, booleans, null, enum names, lists, objects) and
selection sets; inline fragments (``... on Type { ... }``) are merged into their parent's
selection. :func:`parse` returns the operation type and its root fields with their arguments
already resolved against the request's variables; :func:`project` keeps of a resolved value only
the fields a selection asks for, calling resolvers (callables taking the field's arguments)
on the way. Errors raise :class:`GraphQLError` with the position.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Field", "GraphQLError", "Operation", "parse", "project"]

_TOKEN = re.compile(
    r"""
    (?P<skip>[\s,]+|\#[^\n]*)
  | (?P<spread>\.\.\.)
  | (?P<punct>[{}()\[\]:!=$@])
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
    """,
    re.VERBOSE,
)


class GraphQLError(ValueError):
    """A document that cannot be read, or an argument that is not allowed."""


@dataclass
class Field:
    name: str
    alias: str
    args: dict[str, Any]
    selections: list[Field] | None = None
    optional: bool = False
    """From an inline fragment: absent on values of other types."""


@dataclass
class Operation:
    kind: str  # "query" or "mutation"
    fields: list[Field] = field(default_factory=list)


class _Reader:
    def __init__(self, text: str, variables: Mapping[str, Any]) -> None:
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise GraphQLError(f"Parse error on {text[pos : pos + 12]!r} at {pos}")
            if m.lastgroup != "skip":
                assert m.lastgroup is not None
                self.tokens.append((m.lastgroup, m.group(), pos))
            pos = m.end()
        self.i = 0
        self.variables = variables

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "", -1)

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        k, v, pos = self.peek()
        if (value is not None and v != value) or (kind is not None and k != kind) or k == "end":
            want = value or kind
            raise GraphQLError(f"Parse error: expected {want} at {pos}, found {v or 'end'!r}")
        self.i += 1
        return v

    def document(self) -> Operation:
        kind = "query"
        if self.peek()[1] in ("query", "mutation"):
            kind = self.take()
            if self.peek()[0] == "name":
                self.take()
            if self.peek()[1] == "(":
                self._skip_definitions()
        if self.peek()[1] == "subscription":
            raise GraphQLError("subscriptions are not supported")
        op = Operation(kind, self.selection_set())
        if self.peek()[0] != "end":
            raise GraphQLError(f"Parse error: one operation per document (at {self.peek()[2]})")
        return op

    def _skip_definitions(self) -> None:
        depth = 0
        while True:
            v = self.take()
            depth += v == "("
            depth -= v == ")"
            if depth == 0:
                return

    def selection_set(self) -> list[Field]:
        self.take("{")
        out: list[Field] = []
        while self.peek()[1] != "}":
            if self.peek()[0] == "spread":
                self.take()
                self.take("on")
                self.take(kind="name")
                for f in self.selection_set():
                    f.optional = True
                    out.append(f)
                continue
            name = self.take(kind="name")
            alias = name
            if self.peek()[1] == ":":
                self.take(":")
                name = self.take(kind="name")
            args: dict[str, Any] = {}
            if self.peek()[1] == "(":
                self.take("(")
                while self.peek()[1] != ")":
                    key = self.take(kind="name")
                    self.take(":")
                    args[key] = self.value()
                self.take(")")
            subs = self.selection_set() if self.peek()[1] == "{" else None
            out.append(Field(name, alias, args, subs))
        self.take("}")
        if not out:
            raise GraphQLError("Parse error: empty selection set")
        return out

    def value(self) -> Any:
        k, v, pos = self.peek()
        if v == "$":
            self.take()
            name = self.take(kind="name")
            return self.variables.get(name)
        if v == "[":
            self.take()
            items = []
            while self.peek()[1] != "]":
                items.append(self.value())
            self.take("]")
            return items
        if v == "{":
            self.take()
            obj = {}
            while self.peek()[1] != "}":
                key = self.take(kind="name")
                self.take(":")
                obj[key] = self.value()
            self.take("}")
            return obj
        self.take()
        if k == "string":
            return json.loads(v)
        if k == "number":
            return float(v) if any(c in v for c in ".eE") else int(v)
        if k == "name":
            return {"true": True, "false": False, "null": None}.get(v, v)
        raise GraphQLError(f"Parse error: unexpected {v!r} at {pos}")


def parse(text: str, variables: Mapping[str, Any] | None = None) -> Operation:
    """The operation ``text`` holds, its arguments resolved against ``variables``."""
    if not isinstance(text, str) or not text.strip():
        raise GraphQLError("No query string was present")
    return _Reader(text, variables or {}).document()


def project(value: Any, selections: list[Field] | None) -> Any:
    """``value`` reduced to the fields ``selections`` ask for. A mapping's entry may be a
    resolver: a callable taking the field's arguments."""
    if selections is None:
        return value
    if isinstance(value, list):
        return [project(v, selections) for v in value]
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise GraphQLError(f"a selection on a scalar ({type(value).__name__})")
    out: dict[str, Any] = {}
    for f in selections:
        if f.name not in value:
            if f.optional:
                continue
            raise GraphQLError(f"Field '{f.name}' doesn't exist on this type")
        got = value[f.name]
        if callable(got):
            resolver: Callable[[dict[str, Any]], Any] = got
            got = resolver(f.args)
        out[f.alias] = project(got, f.selections)
    return out
