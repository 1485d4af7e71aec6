"""Reading the deployment file's YAML with the line of every key and list item.

``yaml.SafeLoader`` composes the node tree (which knows lines), then the same loader builds the
data, so the loader can look up the line of any location a validation error names; a duplicate
key is a problem of its own (YAML would silently keep the last one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import ConfigProblem
from ._paths import Path as KeyPath
from ._paths import format_path

__all__ = ["YamlDocument", "parse_yaml"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class YamlDocument:
    """A parsed file: its data and the line (1-based) of every key and list item."""

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor that is in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


MAX_YAML_BYTES = 1024 * 1024
MAX_YAML_DEPTH = 64
MAX_YAML_VALUES = 100_000
"""Limits of a deployment file: its size, nesting and the number of values once aliases are
expanded (a few hundred bytes of aliases can otherwise expand to billions of values)."""


def _too_big(text: str) -> str | None:
    """Why ``text`` is refused before parsing (size, nesting visible in the text), or None."""
    if len(text) > MAX_YAML_BYTES:
        return f"the file is {len(text)} characters; at most {MAX_YAML_BYTES} accepted"
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
    indent = max((len(line) - len(line.lstrip(" -")) for line in text.splitlines()), default=0)
    if deepest > MAX_YAML_DEPTH or indent > 4 * MAX_YAML_DEPTH:
        return f"nested deeper than {MAX_YAML_DEPTH} levels"
    return None


def _expanded_size(root: yaml.Node) -> tuple[int, int]:
    """(values once aliases are expanded, depth) of a node graph, without expanding it."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in size:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                children += [k, v]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if not done:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in size)
            continue
        size[id(node)] = min(1 + sum(size.get(id(c), 1) for c in children), 10**12)
        depth[id(node)] = 1 + max((depth.get(id(c), 1) for c in children), default=0)
    return size[id(root)], depth[id(root)]


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document; record the line of every key and item and any duplicate key.

    A file over :data:`MAX_YAML_BYTES`, nested deeper than :data:`MAX_YAML_DEPTH` or whose
    aliases expand to more than :data:`MAX_YAML_VALUES` values is refused at once."""
    refused = _too_big(text)
    if refused is not None:
        return YamlDocument(None, problems=[ConfigProblem("", f"invalid YAML: {refused}", file)])
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(None)
        values, deepest = _expanded_size(node)
        if values > MAX_YAML_VALUES or deepest > MAX_YAML_DEPTH:
            why = (
                f"aliases expand to {values} values; at most {MAX_YAML_VALUES} accepted"
                if values > MAX_YAML_VALUES
                else f"nested deeper than {MAX_YAML_DEPTH} levels"
            )
            return YamlDocument(None, problems=[ConfigProblem("", f"invalid YAML: {why}", file)])
        doc = YamlDocument(None)
        _duplicates(node, (), doc, file, set())
        doc.data = loader.construct_document(node)
        _lines(node, (), doc.lines, set())
        doc.lines.setdefault((), node.start_mark.line + 1)
        return doc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = exc.problem or "invalid YAML"
        if exc.context and exc.context_mark is not None and exc.problem_mark is not None:
            reason = f"{reason} ({exc.context} at line {exc.context_mark.line + 1})"
        lines = text.splitlines()
        if line is not None and line <= len(lines) and "${" in lines[line - 1]:
            reason += '; inside [ ] or { } write references in quotes: "${NAME}"'
        return YamlDocument(
            None, problems=[ConfigProblem("", f"invalid YAML: {reason}", file, line)]
        )
    except yaml.YAMLError as exc:
        return YamlDocument(
            None, problems=[ConfigProblem("", f"invalid YAML: {type(exc).__name__}", file)]
        )
    except RecursionError:  # pragma: no cover - refused by the limits above
        return YamlDocument(
            None, problems=[ConfigProblem("", "invalid YAML: nested too deep", file)]
        )
    finally:
        loader.dispose()


def _key_text(node: yaml.Node) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _duplicates(
    node: yaml.Node, path: KeyPath, doc: YamlDocument, file: str, active: set[int]
) -> None:
    if id(node) in active:
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = _key_text(key_node)
            if key_node.tag == _MERGE_TAG or key is None:
                continue
            line = key_node.start_mark.line + 1
            if key in first:
                doc.problems.append(
                    ConfigProblem(
                        format_path((*path, key)),
                        f"duplicate key {key!r} (also at line {first[key]}); write it once",
                        file,
                        line,
                    )
                )
            else:
                first[key] = line
            _duplicates(value_node, (*path, key), doc, file, active)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _duplicates(item, (*path, i), doc, file, active)
    active.discard(id(node))


def _lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], active: set[int]) -> None:
    if id(node) in active or len(path) > 64:
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:  # merges are flattened by construction
            key = _key_text(key_node)
            if key is None:
                continue
            lines[(*path, key)] = key_node.start_mark.line + 1
            _lines(value_node, (*path, key), lines, active)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _lines(item, (*path, i), lines, active)
    active.discard(id(node))
