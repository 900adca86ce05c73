"""What a run actually executes: inputs merged with desktop parameters, the prompt rendered, secrets masked."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_PLACEHOLDER = re.compile(r"\{(\$?)([A-Za-z_][A-Za-z0-9_.\-]*)\}")


def sensitive_placeholder(name: str) -> str:
    return f"[sensitive:{name}]"


@dataclass(frozen=True, slots=True)
class Resolved:
    prompt: str
    inputs: dict[str, Any]
    sensitive_names: frozenset[str]


def merge_inputs(
    pool_parameters: Iterable[Mapping[str, Any] | None],
    run_inputs: Mapping[str, Any] | None,
    machine_parameters: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Pool defaults < run inputs < desktop parameters ("desktop parameters override run-level inputs")."""
    merged: dict[str, Any] = {}
    for params in pool_parameters:
        merged.update(params or {})
    merged.update(run_inputs or {})
    merged.update(machine_parameters or {})
    return merged


def render(prompt: str, inputs: Mapping[str, Any], sensitive_names: Iterable[str]) -> str:
    """Fills `{name}` from the inputs and `{$name}` with a placeholder: secrets are never rendered.

    Unknown names stay as written, which is what a caller debugging a missing input wants to see.
    """
    secret = frozenset(sensitive_names)

    def fill(match: re.Match[str]) -> str:
        dollar, name = match.group(1), match.group(2)
        if dollar:
            return sensitive_placeholder(name) if name in secret else match.group(0)
        if name not in inputs:
            return match.group(0)
        value = inputs[name]
        return value if isinstance(value, str) else json.dumps(value)

    return _PLACEHOLDER.sub(fill, prompt)


def resolve(
    prompt: str,
    pool_parameters: Iterable[Mapping[str, Any] | None],
    run_inputs: Mapping[str, Any] | None,
    machine_parameters: Mapping[str, Any] | None,
    sensitive_names: Iterable[str],
) -> Resolved:
    inputs = merge_inputs(pool_parameters, run_inputs, machine_parameters)
    names = frozenset(sensitive_names)
    return Resolved(render(prompt, inputs, names), inputs, names)


def resolve_refs(
    inputs: Mapping[str, Any] | None, outputs_of: Callable[[str], Any]
) -> tuple[dict[str, Any] | None, list[str]]:
    """Replaces chain values `{"$ref": "alias.outputs.a.b"}` by that path in the aliased run's output_data.

    `outputs_of(alias)` returns the output_data of the session's run with that alias, or None.
    Returns the inputs and one message per reference that resolves to nothing (the step then fails).
    """
    if inputs is None:
        return None, []
    resolved: dict[str, Any] = {}
    missing: list[str] = []
    for key, value in inputs.items():
        if isinstance(value, dict) and set(value) == {"$ref"} and isinstance(value["$ref"], str):
            found, ok = _follow(value["$ref"], outputs_of)
            resolved[key] = found
            if not ok:
                missing.append(f"Input {key!r}: $ref {value['$ref']!r} does not resolve to an output")
        else:
            resolved[key] = value
    return resolved, missing


def _follow(ref: str, outputs_of: Callable[[str], Any]) -> tuple[Any, bool]:
    alias, _, rest = ref.partition(".")
    section, _, path = rest.partition(".")
    node = outputs_of(alias) if section == "outputs" else None
    if node is None:
        return None, False
    for part in path.split(".") if path else ():
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None, False
    return node, True
