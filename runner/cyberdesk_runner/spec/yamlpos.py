"""YAML parsing that remembers where every value came from, for `file:line:col` errors.

Shared by job files and the config file. Two deliberate departures from PyYAML's defaults:

* YAML 1.2 core scalars instead of YAML 1.1: `on`, `yes`, `no` stay strings (`retry: {on: [...]}` would
  otherwise get the key True, and `site: no` the value False), `012` is 12, `1:30` is a string, and
  dates stay strings so that pydantic parses them and inputs stay JSON-able.
* Duplicate keys are errors: YAML parsers silently keep the last one, hiding a mistake.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cyberdesk_runner.spec.errors import JobFileError, SpecError

__all__ = ["Located", "NodePos", "YamlDocument", "YamlPath", "format_path", "parse_yaml", "read_source"]

YamlPath = tuple[Hashable, ...]
"""Keys and list indices from the document root to a value, e.g. `("retry", "backoff")`."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_YAML11_ONLY = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}


class _Loader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema for booleans and numbers, and no implicit timestamps."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _YAML11_ONLY]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    # PyYAML's own constructor reads `012` as octal and rejects `0o12` (YAML 1.1 rules).
    text = str(loader.construct_scalar(node)).replace("_", "")
    sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text.lstrip("+"))
    if digits.startswith("0o"):
        return sign * int(digits[2:], 8)
    if digits.startswith("0x"):
        return sign * int(digits[2:], 16)
    return sign * int(digits, 10)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


@dataclass(frozen=True)
class NodePos:
    """Where a value starts (1-based), and where its key starts when it is a mapping entry."""

    line: int
    column: int
    kind: Literal["mapping", "sequence", "scalar"]
    key_line: int | None = None
    key_column: int | None = None


@dataclass(frozen=True)
class Located:
    """The deepest known node for a path; `shown` is the path as the user should read it."""

    pos: NodePos
    shown: YamlPath
    exact: bool


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML document (`data` is None for an empty file) and the position of every value in it."""

    data: Any
    positions: dict[YamlPath, NodePos] = field(repr=False)

    def locate(self, path: Sequence[Hashable]) -> Located:
        """The node at `path`, or at its longest prefix that exists (for a missing key: its mapping).

        An index 0 into a value that is not a list is skipped: several fields accept one entry where a
        list is expected (`schedule: {cron: ...}`), and errors must point into that one entry.
        """
        found: YamlPath = ()
        shown: list[Hashable] = []
        exact = True
        for part in path:
            candidate = (*found, part)
            if exact and candidate in self.positions:
                found = candidate
            elif exact and part == 0 and self.positions[found].kind != "sequence":
                continue
            else:
                exact = False
            shown.append(part)
        return Located(self.positions[found], tuple(shown), exact)


def read_source(path: Path) -> str:
    """The text of a YAML file; raises JobFileError if it cannot be read or is not UTF-8."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JobFileError([SpecError(path, None, None, "", f"not UTF-8 text (byte {exc.start})")]) from None
    except OSError as exc:
        problem = "file not found" if isinstance(exc, FileNotFoundError) else f"cannot read ({exc.strerror})"
        raise JobFileError([SpecError(path, None, None, "", problem)]) from None


def parse_yaml(text: str, file: Path) -> YamlDocument:
    """Parse one YAML document; raises JobFileError for syntax errors and duplicate keys (all of them)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(None, {(): NodePos(1, 1, "scalar")})
        positions: dict[YamlPath, NodePos] = {}
        duplicates: list[SpecError] = []
        _walk(loader, node, (), positions, duplicates, file, set())
        if duplicates:
            raise JobFileError(duplicates)
        return YamlDocument(loader.construct_document(node), positions)
    except yaml.MarkedYAMLError as exc:
        raise JobFileError([_syntax_error(exc, file)]) from None
    except yaml.YAMLError as exc:  # unmarked: e.g. a non-printable character in the stream
        raise JobFileError([SpecError(file, None, None, "", f"YAML syntax error: {exc}")]) from None
    finally:
        loader.dispose()


def format_path(path: Sequence[Hashable]) -> str:
    """`("schedule", 1, "cron")` -> `schedule[1].cron`."""
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _walk(
    loader: _Loader,
    node: Node,
    path: YamlPath,
    out: dict[YamlPath, NodePos],
    duplicates: list[SpecError],
    file: Path,
    ancestors: set[int],
) -> None:
    if id(node) in ancestors:  # a recursive alias; construction reports what is wrong with it
        return
    kind: Literal["mapping", "sequence", "scalar"] = (
        "mapping"
        if isinstance(node, MappingNode)
        else "sequence"
        if isinstance(node, SequenceNode)
        else "scalar"
    )
    out.setdefault(path, NodePos(node.start_mark.line + 1, node.start_mark.column + 1, kind))
    ancestors = ancestors | {id(node)}
    if isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _walk(loader, item, (*path, index), out, duplicates, file, ancestors)
    elif isinstance(node, MappingNode):
        merged: list[Node] = []
        first_seen: dict[Hashable, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.extend(value_node.value if isinstance(value_node, SequenceNode) else [value_node])
                continue
            key = _key(loader, key_node)
            if key is None:
                continue
            key_line = key_node.start_mark.line + 1
            if key in first_seen:
                duplicates.append(
                    SpecError(
                        file,
                        key_line,
                        key_node.start_mark.column + 1,
                        format_path((*path, key)),
                        f"duplicate key {key!r} (first given on line {first_seen[key]})",
                    )
                )
                continue
            first_seen[key] = key_line
            _walk(loader, value_node, (*path, key), out, duplicates, file, ancestors)
            child = (*path, key)
            out[child] = replace(out[child], key_line=key_line, key_column=key_node.start_mark.column + 1)
        # Merged (`<<: *anchor`) entries point at the anchor's text unless overridden explicitly.
        for source in merged:
            if isinstance(source, MappingNode):
                for key_node, value_node in source.value:
                    key = _key(loader, key_node)
                    if key is not None and (*path, key) not in out:
                        _walk(loader, value_node, (*path, key), out, [], file, ancestors)


def _key(loader: _Loader, key_node: Node) -> Hashable | None:
    if not isinstance(key_node, ScalarNode):
        return None  # a complex key; construction rejects it if it is unhashable
    key = loader.construct_object(key_node, deep=True)
    return key if isinstance(key, Hashable) else None


def _syntax_error(exc: yaml.MarkedYAMLError, file: Path) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.problem:
        problem = f"{problem} ({exc.context})"
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
    return SpecError(file, line, column, "", f"YAML syntax error: {problem}")
