"""``${ENV_VAR}`` references in the deployment file, and how secrets are kept.

Any string value in the file may contain references: ``${HUBSPOT_TOKEN}`` (the whole value) or
``https://${SF_HOST}/`` (part of it); ``$$`` writes a literal ``$``. They are resolved from the
environment when the file is loaded, before validation. Every missing variable is reported at
once, each with the variable's name and the key that needs it.

A resolved value is an :class:`EnvValue`: a ``str`` that remembers the variables it came from and
whose ``repr`` shows the reference (``'${HUBSPOT_TOKEN}'``), never the value. Fields holding
credentials are of type :data:`Secret` (a pydantic ``SecretStr``, shown as ``'**********'`` in
``repr``, ``str`` and JSON dumps); in a file they must be written as references, so a credential
is never stored in the file itself. Error messages are built from names, never values, and the
loader also scrubs every resolved value out of its messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BeforeValidator, SecretStr, ValidationInfo

__all__ = [
    "EnvValue",
    "MissingVariable",
    "Resolution",
    "Secret",
    "resolve_references",
    "scrub",
    "secrets_to_secretstr",
]

_REF = re.compile(r"\$(?:\$|\{([^}]*)\})")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Path = tuple[str | int, ...]


class EnvValue(str):
    """A string that came (at least partly) from environment variables.

    ``variables`` names them, ``reference`` is the text as written in the file, and ``resolved``
    is False when the variables were deliberately left unresolved (``resolve_secrets=False``) or
    are missing; then the string equals the reference text.
    """

    variables: tuple[str, ...]
    reference: str
    resolved: bool

    def __new__(
        cls, value: str, variables: Iterable[str], reference: str, resolved: bool = True
    ) -> EnvValue:
        obj = super().__new__(cls, value)
        obj.variables = tuple(variables)
        obj.reference = reference
        obj.resolved = resolved
        return obj

    def __repr__(self) -> str:
        return repr(self.reference)

    def __reduce__(self) -> tuple[Any, ...]:
        return (EnvValue, (str(self), self.variables, self.reference, self.resolved))


@dataclass(frozen=True)
class MissingVariable:
    """A reference to a variable that is not set, at ``path`` in the file."""

    path: Path
    variable: str


@dataclass
class Resolution:
    """The document with references resolved, and what was found on the way."""

    data: Any
    missing: list[MissingVariable] = field(default_factory=list)
    malformed: list[tuple[Path, str]] = field(default_factory=list)
    env_paths: set[Path] = field(default_factory=set)
    unresolved_paths: set[Path] = field(default_factory=set)
    values: dict[str, str] = field(default_factory=dict)
    """Variable name -> its value, for scrubbing messages. Never print this."""

    def __repr__(self) -> str:
        return f"Resolution(missing={self.missing!r}, env_paths={sorted(map(str, self.env_paths))})"


def resolve_references(data: Any, env: Mapping[str, str], *, resolve: bool = True) -> Resolution:
    """Replace ``${NAME}`` references in every string value of ``data`` (a YAML document).

    With ``resolve=False`` a variable that is not set is not reported missing: the string holding
    it stays as written (an unresolved :class:`EnvValue`). Variables that are set are resolved
    the same way in both modes, so every command sees the same values (``report`` reads the
    ``state_path`` that ``run`` wrote).
    """
    result = Resolution(data=None)
    result.data = _walk(data, (), env, resolve, result)
    return result


def _walk(node: Any, path: Path, env: Mapping[str, str], resolve: bool, result: Resolution) -> Any:
    if isinstance(node, dict):
        return {k: _walk(v, (*path, str(k)), env, resolve, result) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, (*path, i), env, resolve, result) for i, v in enumerate(node)]
    if isinstance(node, str) and "$" in node:
        return _substitute(node, path, env, resolve, result)
    return node


def _substitute(
    text: str, path: Path, env: Mapping[str, str], resolve: bool, result: Resolution
) -> str:
    names: list[str] = []
    missing = False
    bad = False

    def replace(match: re.Match[str]) -> str:
        nonlocal missing, bad
        name = match.group(1)
        if name is None:  # "$$"
            return "$"
        if not _NAME.match(name):
            bad = True
            result.malformed.append(
                (path, f"malformed environment reference ${{{name}}}: expected ${{NAME}}")
            )
            return match.group(0)
        names.append(name)
        value = env.get(name)
        if value is None:
            missing = True
            if resolve:
                result.missing.append(MissingVariable(path, name))
            return match.group(0)
        result.values[name] = value
        return value

    value = _REF.sub(replace, text)
    if "${" in text.replace("$$", "") and not names and not bad:
        result.malformed.append((path, "malformed environment reference: expected ${NAME}"))
        bad = True
    if bad:
        result.unresolved_paths.add(path)
    if not names:
        return value
    result.env_paths.add(path)
    if missing:
        result.unresolved_paths.add(path)
        return EnvValue(text, names, text, resolved=False)
    return EnvValue(value, names, text)


def scrub(message: str, values: Mapping[str, str]) -> str:
    """``message`` with every resolved value replaced by its ``${NAME}`` reference."""
    for name, value in sorted(values.items(), key=lambda kv: -len(kv[1])):
        if len(value) >= 4:
            message = message.replace(value, f"${{{name}}}")
    return message


def secrets_to_secretstr(value: Any) -> Any:
    """A plugin's settings with every value that came from the environment made a SecretStr.

    crm-pulse cannot know which of a plugin's settings are credentials, so it treats every
    referenced value as one; the plugin reads it with ``get_secret_value()``.
    """
    if isinstance(value, EnvValue):
        return SecretStr(str(value))
    if isinstance(value, dict):
        return {k: secrets_to_secretstr(v) for k, v in value.items()}
    if isinstance(value, list):
        return [secrets_to_secretstr(v) for v in value]
    return value


def _require_reference(value: Any, info: ValidationInfo) -> Any:
    """In a file, a credential must be a ``${NAME}`` reference; built in code it may be anything."""
    context = info.context
    from_file = isinstance(context, Mapping) and context.get("from_file", False)
    if isinstance(value, EnvValue):
        if value.resolved and not str(value):
            raise ValueError(f"{value.reference} is set but empty")
        return SecretStr(str(value))
    if from_file and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        example = (info.field_name or "secret").upper()
        raise ValueError(
            "write credentials as environment references like "
            f"${{{example}}} (set the variable outside the file), not as values in the file"
        )
    return value


Secret = Annotated[SecretStr, BeforeValidator(_require_reference)]
"""A credential: a ``${ENV}`` reference in the file, a ``SecretStr`` in the model."""
