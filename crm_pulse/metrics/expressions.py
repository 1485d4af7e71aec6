"""The arithmetic of metric values: ``won_amount / deals_won``, ``100 * (promoters - detractors) / nps_responses``.

An expression is parsed once (Python's own parser, with everything but numbers, names, ``+ - * /``,
unary minus, parentheses and ``prefer(a, b)`` -- ``a`` unless it is null or 0, else ``b`` --
refused) and evaluated with exact fractions. Dividing by zero gives
``None`` ("a value whose denominator is 0 is null"), and ``None`` propagates.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["Expression", "parse_expression"]

Value = Fraction | None
_Eval = Callable[[Mapping[str, Value]], Value]


@dataclass(frozen=True)
class Expression:
    """A parsed expression: its text, the names it reads, and how to evaluate it."""

    text: str
    names: frozenset[str]
    _fn: _Eval

    def evaluate(self, values: Mapping[str, Value]) -> Value:
        """Evaluate with ``values`` giving a :class:`Fraction` (or None) for every name."""
        return self._fn(values)


def _div(a: Value, b: Value) -> Value:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _binary(op: ast.operator, left: _Eval, right: _Eval) -> _Eval:
    if isinstance(op, ast.Div):
        return lambda v: _div(left(v), right(v))
    if isinstance(op, ast.Add):
        fn: Callable[[Fraction, Fraction], Fraction] = lambda a, b: a + b  # noqa: E731
    elif isinstance(op, ast.Sub):
        fn = lambda a, b: a - b  # noqa: E731
    elif isinstance(op, ast.Mult):
        fn = lambda a, b: a * b  # noqa: E731
    else:
        raise ValueError(f"operator {type(op).__name__} is not allowed (use + - * /)")

    def run(v: Mapping[str, Value]) -> Value:
        a, b = left(v), right(v)
        return None if a is None or b is None else fn(a, b)

    return run


def _prefer(a: Value, b: Value) -> Value:
    """``a``, unless it is null or 0: then ``b`` (quota events replace the configured quota)."""
    return b if a is None or a == 0 else a


_FUNCTIONS: dict[str, tuple[Callable[..., Value], int]] = {"prefer": (_prefer, 2)}


def _compile(node: ast.AST, names: set[str]) -> _Eval:
    if isinstance(node, ast.Expression):
        return _compile(node.body, names)
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    ):
        const = Fraction(str(node.value))
        return lambda v: const
    if isinstance(node, ast.Name):
        name = node.id
        names.add(name)
        return lambda v: v[name]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _compile(node.operand, names)
        if isinstance(node.op, ast.UAdd):
            return inner

        def neg(v: Mapping[str, Value]) -> Value:
            x = inner(v)
            return None if x is None else -x

        return neg
    if isinstance(node, ast.BinOp):
        return _binary(node.op, _compile(node.left, names), _compile(node.right, names))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        fn, arity = _FUNCTIONS[node.func.id]
        if len(node.args) != arity:
            raise ValueError(f"{node.func.id}() takes {arity} arguments")
        args = [_compile(a, names) for a in node.args]
        return lambda v: fn(*(a(v) for a in args))
    raise ValueError(
        f"{ast.unparse(node)!r} is not allowed (numbers, names, + - * /, parentheses and"
        f" {', '.join(f'{n}()' for n in sorted(_FUNCTIONS))})"
    )


def parse_expression(text: str) -> Expression:
    """Parse ``text``; raises ``ValueError`` with the reason if it is not a valid expression."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"cannot parse expression {text!r}: {exc.msg}") from None
    names: set[str] = set()
    fn = _compile(tree, names)
    return Expression(text=text.strip(), names=frozenset(names), _fn=fn)
