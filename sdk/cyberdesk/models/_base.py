"""The one serialisation layer of every model.

``from_dict`` / ``to_dict`` are driven by the attrs fields and type hints of each class, compiled once per class,
so the models themselves are plain declarations. Wire names are the attribute names.

Rules (they mirror the real API's generated client, see docs/cyberdesk-api.md):

* a field without a default is a required key (``from_dict`` fails without it) and is always sent;
* a field whose value is ``UNSET`` is omitted by ``to_dict``; ``None`` is sent as JSON ``null``;
* keys the class does not know are kept in ``additional_properties`` (and sent back by ``to_dict``);
* an enum field typed ``SomeEnum | UnknownValue`` takes a value the enum lacks as ``UnknownValue`` (the raw string);
* UUIDs go out as ``str(uuid)``, datetimes as ``isoformat()`` (naive ones are taken as UTC), enums as their value.
"""

import datetime as dt
import enum
import itertools
import types
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self, TypeVar

import attrs
from dateutil.parser import isoparse

from .._types import UNSET, Unset
from .enums import UnknownValue

Parser = Callable[[Any], Any]
M = TypeVar("M")
JSONObject = dict[str, Any]

_ADDITIONAL = "additional_properties"


class ModelError(ValueError):
    """A JSON value does not fit a model: a missing required key, a wrong type, a bad UUID/datetime/enum value."""

    def __init__(self, reason: str, path: tuple[str | int, ...] = ()) -> None:
        self.reason = reason
        self.path = path
        super().__init__(str(self))

    def at(self, key: str | int) -> "ModelError":
        return ModelError(self.reason, (key, *self.path))

    def __str__(self) -> str:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path).lstrip(".")
        return f"{where}: {self.reason}" if where else self.reason


@attrs.frozen
class _Field:
    name: str
    parse: Parser
    required: bool


_PLANS: dict[type, tuple[_Field, ...]] = {}


def _plan(cls: type) -> tuple[_Field, ...]:
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = tuple(
            _Field(a.name, _parser(hints[a.name]), a.default is attrs.NOTHING)
            for a in attrs.fields(cls)
            if a.name != _ADDITIONAL
        )
        _PLANS[cls] = plan
    return plan


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _identity(value: Any) -> Any:
    return value


def _typed(tp: type) -> Parser:
    # bool is an int subclass: never accept true/false where a number is expected.
    def parse(value: Any) -> Any:
        if isinstance(value, tp) and (tp is bool or not isinstance(value, bool)):
            return value
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        raise ModelError(f"expected {tp.__name__}, got {_kind(value)}")

    _TYPED[parse] = tp
    return parse


#: The parsers `_typed` made, with the type each accepts as is (`_loader` checks that type inline).
_TYPED: dict[Parser, type] = {}


#: UUIDs parsed lately, by their text: the same few ids (a job's workflow, its desktops, a run's id in its create
#: answer and then its webhook) come back in every answer, and ``uuid.UUID(text)`` is the dearest part of parsing
#: one. UUIDs are immutable, so one instance serves every model that has the id. Emptied when full.
_UUIDS: dict[str, uuid.UUID] = {}
_UUIDS_KEPT = 2048


def _uuid_of(text: str) -> uuid.UUID:
    """``uuid.UUID(text)``, remembered (raises its ValueError)."""
    known = _UUIDS.get(text)
    if known is None:
        known = uuid.UUID(text)
        if len(_UUIDS) >= _UUIDS_KEPT:
            _UUIDS.clear()
        _UUIDS[text] = known
    return known


def _parse_uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise ModelError(f"expected a UUID string, got {_kind(value)}")
    try:
        return _uuid_of(value) if type(value) is str else uuid.UUID(value)
    except ValueError:
        raise ModelError(f"{value!r} is not a valid UUID") from None


def _parse_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            # fromisoformat takes what servers send (RFC 3339) 40 times faster; isoparse the rest of ISO-8601.
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            try:
                parsed = isoparse(value)
            except ValueError:
                raise ModelError(f"{value!r} is not an ISO-8601 datetime") from None
    else:
        raise ModelError(f"expected an ISO-8601 datetime string, got {_kind(value)}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _enum(tp: type[enum.Enum]) -> Parser:
    def parse(value: Any) -> Any:
        try:
            return tp(value)
        except ValueError:
            raise ModelError(f"{value!r} is not a valid {tp.__name__}") from None

    return parse


def _unknown_value(value: Any) -> UnknownValue:
    if isinstance(value, str):
        return UnknownValue(value)
    raise ModelError(f"expected a string, got {_kind(value)}")


def _list(item: Parser) -> Parser:
    def parse(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise ModelError(f"expected an array, got {_kind(value)}")
        out = []
        for i, x in enumerate(value):
            try:
                out.append(item(x))
            except ModelError as e:
                raise e.at(i) from None
        return out

    return parse


def _dict(item: Parser) -> Parser:
    def parse(value: Any) -> dict[str, Any]:
        # `type(...) is dict` first: what json.loads makes, checked without the ABC machinery.
        if (type(value) is not dict and not isinstance(value, Mapping)) or not all(
            map(isinstance, value, itertools.repeat(str))
        ):
            raise ModelError(f"expected an object, got {_kind(value)}")
        if item is _identity:
            return dict(value)
        out = {}
        for k, x in value.items():
            try:
                out[k] = item(x)
            except ModelError as e:
                raise e.at(k) from None
        return out

    return parse


def _union(options: Sequence[Parser], nullable: bool) -> Parser:
    def parse(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise ModelError("may not be null")
        errors = []
        for option in options:
            try:
                return option(value)
            except ModelError as e:
                errors.append(e)
        raise errors[0] if len(errors) == 1 else ModelError(f"unexpected value {value!r}")

    if nullable and len(options) == 1:
        _NULLABLE[parse] = options[0]
    return parse


#: The parsers `_union` made of one option or null, with that option (`_loader` checks null inline).
_NULLABLE: dict[Parser, Parser] = {}


def _parser(tp: Any) -> Parser:
    origin = typing.get_origin(tp)
    if tp is Any or isinstance(tp, TypeVar):
        return _identity
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        options = [_parser(a) for a in args if a is not types.NoneType and a != Unset]
        return _union(options, nullable=types.NoneType in args)
    if origin is list:
        return _list(_parser(typing.get_args(tp)[0]))
    if origin is dict:
        return _dict(_parser(typing.get_args(tp)[1]))
    if isinstance(tp, type):
        if issubclass(tp, Model):
            return tp.from_dict
        if issubclass(tp, enum.Enum):
            return _enum(tp)
        if tp is UnknownValue:
            return _unknown_value
        if tp is uuid.UUID:
            return _parse_uuid
        if tp is dt.datetime:
            return _parse_datetime
        if tp in (str, int, float, bool):
            return _typed(tp)
    raise TypeError(f"models: unsupported field type {tp!r}")


_LOADERS: dict[type, Callable[[Any], Any]] = {}
_MISSING = object()


def _loader(cls: type[M]) -> Callable[[Any], M]:
    """``load(cls, data)`` as one function written for ``cls`` (made on first use): the same checks, errors and
    result, without walking the plan field by field. Every answer of every call is parsed through it, so its cost
    is paid per run many times over (a create call's answer, a webhook's event, each run of a listed page)."""
    loader = _LOADERS.get(cls)
    if loader is not None:
        return loader
    plan = _plan(cls)
    env: dict[str, Any] = {
        "cls": cls,
        "Mapping": Mapping,
        "ModelError": ModelError,
        "MISSING": _MISSING,
        "kind": _kind,
        "known": frozenset(f.name for f in plan),
    }
    lines = [
        "def load(data):",
        "    if type(data) is not dict and not isinstance(data, Mapping):",
        "        raise ModelError(f'expected an object for {cls.__name__}, got {kind(data)}')",
        "    kw = {}",
    ]
    for i, f in enumerate(plan):
        name = repr(f.name)
        lines.append(f"    v = data.get({name}, MISSING)")
        lines.append("    if v is MISSING:")
        lines.append(
            f"        raise ModelError('required key is missing', ({name},))"
            if f.required
            else "        pass"
        )
        parse, fast = f.parse, []
        if parse is _identity:
            lines.append(f"    else:\n        kw[{name}] = v")
            continue
        if parse in _NULLABLE:
            fast.append("v is None")
            parse = _NULLABLE[parse]
        tp = _TYPED.get(parse)
        if tp is str:  # the common case written out; anything else goes to the parser for its answer
            fast.append("type(v) is str")
        # Past the null check, a nullable union of one option is that option (its error, unchanged).
        env[f"p{i}"] = parse
        if fast:
            lines.append(f"    elif {' or '.join(fast)}:\n        kw[{name}] = v")
        lines += [
            "    else:",
            "        try:",
            f"            kw[{name}] = p{i}(v)",
            "        except ModelError as e:",
            f"            raise e.at({name}) from None",
        ]
    lines += [
        "    if len(data) > len(kw):",
        f"        kw[{_ADDITIONAL!r}] = {{k: v for k, v in data.items() if k not in known}}",
        "    return cls(**kw)",
    ]
    exec(compile("\n".join(lines), f"<model loader {cls.__qualname__}>", "exec"), env)
    made: Callable[[Any], M] = env["load"]
    _LOADERS[cls] = made
    return made


def load(cls: type[M], data: Any, parsers: Mapping[str, Parser] | None = None) -> M:
    """Build ``cls`` from a decoded JSON object; ``parsers`` overrides the parser of some fields (generic items)."""
    if not parsers:
        return _loader(cls)(data)
    if not isinstance(data, Mapping):
        raise ModelError(f"expected an object for {cls.__name__}, got {_kind(data)}")
    kwargs: dict[str, Any] = {}
    plan = _plan(cls)
    for f in plan:
        if f.name in data:
            parse = parsers.get(f.name, f.parse) if parsers else f.parse
            try:
                kwargs[f.name] = parse(data[f.name])
            except ModelError as e:
                raise e.at(f.name) from None
        elif f.required:
            raise ModelError("required key is missing", (f.name,))
    if len(data) > len(kwargs):
        known = {f.name for f in plan}
        kwargs[_ADDITIONAL] = {k: v for k, v in data.items() if k not in known}
    return cls(**kwargs)


def dump_fields(obj: Any) -> JSONObject:
    """The JSON object of an attrs model instance: its additional properties, then every field that is not UNSET."""
    out: JSONObject = dict(getattr(obj, _ADDITIONAL))
    for f in _plan(type(obj)):
        value = getattr(obj, f.name)
        if value is not UNSET:
            out[f.name] = dump(value)
    return out


def isoformat(value: dt.datetime) -> str:
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()


def dump(value: Any) -> Any:
    """A model value as JSON-ready data."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, enum.Enum | UnknownValue):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return isoformat(value)
    if isinstance(value, Model):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: dump(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [dump(v) for v in value]
    return value


@attrs.define(kw_only=True)
class Model:
    """Base of every request/response model."""

    #: Keys of the JSON object that this model does not declare; kept on parse and sent back by ``to_dict``.
    additional_properties: JSONObject = attrs.field(factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Parse a decoded JSON object. Raises :class:`ModelError` (a ``ValueError``) when it does not fit."""
        return _loader(cls)(data)

    def to_dict(self) -> JSONObject:
        """The JSON object of this model (UNSET fields omitted, ``None`` kept as null)."""
        return dump_fields(self)


# attrs converters: let callers pass ids as ``str`` (as in the seed README), store ``uuid.UUID``.


def to_uuid(value: uuid.UUID | str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return _uuid_of(value) if type(value) is str else uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"{value!r} is not a valid UUID") from None


def to_opt_uuid(value: uuid.UUID | str | None | Unset) -> uuid.UUID | None | Unset:
    return value if value is None or value is UNSET else to_uuid(value)


def to_uuid_list(value: Sequence[uuid.UUID | str]) -> list[uuid.UUID]:
    if isinstance(value, str):
        raise ValueError(f"expected a list of UUIDs, got the string {value!r}")
    return [to_uuid(v) for v in value]


def to_opt_uuid_list(value: Sequence[uuid.UUID | str] | None | Unset) -> list[uuid.UUID] | None | Unset:
    return value if value is None or value is UNSET else to_uuid_list(value)


__all__ = ["JSONObject", "Model", "ModelError", "dump", "dump_fields", "isoformat", "load"]
