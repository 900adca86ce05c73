"""Pydantic validation errors -> `SpecError`s with file:line:col and messages written for YAML authors.

Validators that must point at a field other than the one they validate raise `field_error(...)`; the
`at` path in its context is appended to the error's location (pydantic gives model validators the
model's own location only).
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Collection, Hashable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from cyberdesk_runner.spec.errors import SpecError
from cyberdesk_runner.spec.yamlpos import YamlDocument, YamlPath, format_path

__all__ = ["describe", "field_error", "suggest", "validation_errors"]

_FIELD_ERROR = "field_error"


def field_error(message: str, *at: Hashable, on_key: bool = False) -> PydanticCustomError:
    """An error about the value at `at` (relative to the model being validated), or about its key."""
    return PydanticCustomError(_FIELD_ERROR, "{message}", {"message": message, "at": at, "on_key": on_key})


def validation_errors(
    exc: ValidationError,
    doc: YamlDocument,
    file: Path,
    model: type[BaseModel],
    secret_paths: Collection[YamlPath] = (),
) -> list[SpecError]:
    """One SpecError per pydantic error. Values under `secret_paths` are never quoted in messages."""
    errors = [
        _convert(error, doc, file, model, secret_paths) for error in exc.errors() if not _is_echo(error)
    ]
    return sorted(set(errors), key=lambda e: (e.line or 0, e.column or 0, e.field_path, e.message))


def _is_echo(error: ErrorDetails) -> bool:
    # pydantic adds "too short" to a list whose entries failed, even when it has enough of them.
    if error["type"] != "too_short":
        return False
    value, ctx = error["input"], error.get("ctx") or {}
    return isinstance(value, list | tuple | dict) and len(value) >= ctx.get("min_length", 0)


def describe(value: Any) -> str:
    """How a YAML value reads in a message: `'30 seconds'`, `5`, `true`, `a list`."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def suggest(word: str, choices: Collection[str], n: int = 1) -> str:
    """`"; did you mean 'retry'?"` (or `'a', 'b' or 'c'` with n=3) when choices are close to `word`, else ''."""
    close = [repr(choice) for choice in difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)]
    if not close:
        return ""
    listed = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
    return f"; did you mean {listed}?"


def _convert(
    error: ErrorDetails,
    doc: YamlDocument,
    file: Path,
    model: type[BaseModel],
    secret_paths: Collection[YamlPath],
) -> SpecError:
    loc: list[Hashable] = list(error["loc"])
    ctx = error.get("ctx") or {}
    on_key = error["type"] == "extra_forbidden"
    if error["type"] == _FIELD_ERROR:
        loc.extend(ctx["at"])
        on_key = bool(ctx["on_key"])
    if loc and loc[-1] == "[key]":  # pydantic's marker for an invalid mapping key
        loc.pop()
        on_key = True
    located = doc.locate(loc)
    pos = located.pos
    # Point at the key for a missing key (its parent's key: where the user would add it), an unknown key,
    # and a problem with a whole mapping or list (its first line would be one of its entries).
    use_key = on_key or not located.exact or pos.kind != "scalar"
    line, column = (
        (pos.key_line, pos.key_column) if use_key and pos.key_line is not None else (pos.line, pos.column)
    )
    secret = any(tuple(located.shown[: len(p)]) == tuple(p) for p in secret_paths)
    message = _message(error, located.shown, _fields_at(model, loc[:-1]), secret)
    return SpecError(file, line, column, format_path(located.shown), message)


def _message(error: ErrorDetails, shown: YamlPath, sibling_keys: list[str], secret: bool) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    got = "" if secret else f", got {describe(error['input'])}"
    simple = _SIMPLE.get(kind)
    if simple is not None:
        return simple + got
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        key = str(shown[-1]) if shown else ""
        hint = suggest(key, sibling_keys) or (
            f"; expected one of: {', '.join(sibling_keys)}" if sibling_keys else ""
        )
        return f"unknown key {key!r}{hint}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx["error"])
    if kind == "literal_error":
        return f"expected {ctx['expected']}{got}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal"):
        word = {"greater_than_equal": "at least", "greater_than": "more than", "less_than_equal": "at most"}[
            kind
        ]
        bound = ctx.get("ge", ctx.get("gt", ctx.get("le")))
        return f"must be {word} {bound}{got}"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx['pattern']}{got}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    return error["msg"]


_SIMPLE = {
    "string_type": "expected a string",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "datetime_type": "expected an ISO date-time like 2026-01-31T06:00:00",
    "datetime_parsing": "expected an ISO date-time like 2026-01-31T06:00:00",
    "datetime_from_date_parsing": "expected an ISO date-time like 2026-01-31T06:00:00",
}


def _fields_at(model: type[BaseModel], path: Sequence[Hashable]) -> list[str]:
    """The keys allowed in the mapping at `path`, found by following the models' annotations."""
    annotation: Any = model
    for part in path:
        owner = next(
            (m for m in _models_in(annotation) if isinstance(part, str) and part in m.model_fields), None
        )
        annotation = (
            owner.model_fields[str(part)].annotation if owner is not None else _element_of(annotation)
        )
    return [name for m in _models_in(annotation) for name in m.model_fields]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def _element_of(annotation: Any) -> Any:
    """The element type of a list/tuple, or the value type of a dict (through Annotated and Optional)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _element_of(args[0])
    if origin in (typing.Union, types.UnionType):
        elements = [_element_of(arg) for arg in args if arg is not type(None)]
        return elements[0] if elements else None
    if origin in (list, tuple, set, frozenset) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None
