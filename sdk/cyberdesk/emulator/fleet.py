"""Fleet fixtures: the built-in demo fleet and YAML files describing desktops, pools and workflows.

`load_fixture()` only parses and validates; `Emulator.load_fleet()` turns the specs into records.
See demo.yaml for the format.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cyberdesk.emulator.options import DurationRange, Fixture
from cyberdesk.emulator.records import TERMINAL_STATUSES, FailRule


class FixtureError(ValueError):
    """A fixture that cannot describe a fleet; the message says where."""


@dataclass(frozen=True)
class PoolSpec:
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    sensitive: dict[str, Any] | None = None


@dataclass(frozen=True)
class MachineSpec:
    name: str
    parameters: dict[str, Any] | None = None
    sensitive: dict[str, Any] | None = None
    pools: tuple[str, ...] = ()
    status: str = "connected"
    # (simulated seconds after start, "connected" | "disconnected")
    schedule: tuple[tuple[float, str], ...] = ()


@dataclass(frozen=True)
class WorkflowSpec:
    name: str
    prompt: str
    webhooks: bool = True
    run_duration: DurationRange | None = None
    failure_rate: float | None = None
    fail_when: tuple[FailRule, ...] = ()
    # JSON text, as WorkflowCreate sends it; a fixture may write the schema as YAML.
    output_schema: str | None = None
    includes_file_exports: bool = False
    # (filename, text) templates over the run's inputs; None exports the emulator's default CSV.
    exports: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True)
class Fleet:
    pools: tuple[PoolSpec, ...] = ()
    machines: tuple[MachineSpec, ...] = ()
    workflows: tuple[WorkflowSpec, ...] = field(default=())


DEMO_FIXTURE = "demo.yaml"


def load_fixture(source: Fixture | None) -> Fleet:
    """None -> the demo fleet; a path -> that YAML file; a mapping -> already-parsed YAML."""
    if source is None:
        text = resources.files("cyberdesk.emulator").joinpath(DEMO_FIXTURE).read_text(encoding="utf-8")
        return parse_fleet(yaml.safe_load(text), DEMO_FIXTURE)
    if isinstance(source, Mapping):
        return parse_fleet(source, "<fixture>")
    path = Path(source)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FixtureError(f"{path}: {exc}") from exc
    return parse_fleet(data or {}, str(path))


def parse_fleet(data: Any, where: str) -> Fleet:
    if not isinstance(data, Mapping):
        raise FixtureError(f"{where}: the fixture must be a mapping with pools/machines/workflows")
    unknown = set(data) - {"pools", "machines", "workflows"}
    if unknown:
        raise FixtureError(f"{where}: unknown top-level keys {sorted(unknown)}")
    pools = tuple(_pool(p, f"{where}: pools[{i}]") for i, p in enumerate(_list(data, "pools", where)))
    machines = tuple(
        _machine(m, f"{where}: machines[{i}]") for i, m in enumerate(_list(data, "machines", where))
    )
    workflows = tuple(
        _workflow(w, f"{where}: workflows[{i}]") for i, w in enumerate(_list(data, "workflows", where))
    )
    return Fleet(pools, machines, workflows)


def _list(data: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise FixtureError(f"{where}: `{key}` must be a list")
    return value


def _fields(item: Any, where: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
        raise FixtureError(f"{where}: must be a mapping with a string `name`")
    unknown = set(item) - allowed - {"name"}
    if unknown:
        raise FixtureError(f"{where}: unknown keys {sorted(unknown)}")
    return item


def _mapping(item: Mapping[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = item.get(key)
    if value is not None and not isinstance(value, Mapping):
        raise FixtureError(f"{where}: `{key}` must be a mapping")
    return None if value is None else dict(value)


def _pool(item: Any, where: str) -> PoolSpec:
    p = _fields(item, where, {"description", "pool_parameters", "sensitive_parameters"})
    return PoolSpec(
        p["name"],
        p.get("description"),
        _mapping(p, "pool_parameters", where),
        _mapping(p, "sensitive_parameters", where),
    )


def _times(value: Any, where: str, key: str) -> list[float]:
    values = value if isinstance(value, list) else [] if value is None else [value]
    if not all(isinstance(v, int | float) and v >= 0 for v in values):
        raise FixtureError(f"{where}: `{key}` must be seconds >= 0 (a number or a list of numbers)")
    return [float(v) for v in values]


def _machine(item: Any, where: str) -> MachineSpec:
    allowed = {
        "machine_parameters",
        "sensitive_parameters",
        "pools",
        "status",
        "disconnect_at",
        "reconnect_at",
    }
    m = _fields(item, where, allowed)
    pools = m.get("pools") or []
    if not isinstance(pools, list) or not all(isinstance(p, str) for p in pools):
        raise FixtureError(f"{where}: `pools` must be a list of pool names")
    status = m.get("status", "connected")
    if status not in ("connected", "disconnected"):
        raise FixtureError(f"{where}: `status` must be connected or disconnected")
    schedule = [(t, "disconnected") for t in _times(m.get("disconnect_at"), where, "disconnect_at")]
    schedule += [(t, "connected") for t in _times(m.get("reconnect_at"), where, "reconnect_at")]
    return MachineSpec(
        m["name"],
        _mapping(m, "machine_parameters", where),
        _mapping(m, "sensitive_parameters", where),
        tuple(pools),
        status,
        tuple(sorted(schedule)),
    )


def _workflow(item: Any, where: str) -> WorkflowSpec:
    allowed = {
        "prompt",
        "main_prompt",
        "webhooks",
        "run_duration",
        "failure_rate",
        "fail_when",
        "output_schema",
        "includes_file_exports",
        "exports",
    }
    w = _fields(item, where, allowed)
    prompt = w.get("prompt", w.get("main_prompt"))
    if not isinstance(prompt, str):
        raise FixtureError(f"{where}: `prompt` (string) is required")
    try:
        duration = None if w.get("run_duration") is None else DurationRange.parse(w["run_duration"])
    except ValueError as exc:
        raise FixtureError(f"{where}: {exc}") from None
    rate = w.get("failure_rate")
    if rate is not None and not (isinstance(rate, int | float) and 0 <= rate <= 1):
        raise FixtureError(f"{where}: `failure_rate` must be a probability in [0, 1]")
    rules = tuple(_rule(r, f"{where}.fail_when[{i}]") for i, r in enumerate(w.get("fail_when") or []))
    exports = None if w.get("exports") is None else _exports(w["exports"], f"{where}.exports")
    exporting = w.get("includes_file_exports", exports is not None)
    if not isinstance(exporting, bool):
        raise FixtureError(f"{where}: `includes_file_exports` must be true or false")
    return WorkflowSpec(
        w["name"],
        prompt,
        bool(w.get("webhooks", True)),
        duration,
        rate,
        rules,
        output_schema=_output_schema(w, where),
        includes_file_exports=exporting,
        exports=exports,
    )


def _exports(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    """`exports: [{filename: "invoice-{invoice}.csv", content: "..."}]`, both templates over the inputs."""
    if not isinstance(value, list):
        raise FixtureError(f"{where}: must be a list of {{filename, content}} mappings")
    files = []
    for i, item in enumerate(value):
        if (
            not isinstance(item, Mapping)
            or set(item) != {"filename", "content"}
            or not all(isinstance(v, str) for v in item.values())
        ):
            raise FixtureError(f"{where}[{i}]: needs exactly `filename` and `content`, both strings")
        if not item["filename"].strip() or "/" in item["filename"] or "\\" in item["filename"]:
            raise FixtureError(f"{where}[{i}].filename: must be a plain file name (no folders)")
        files.append((item["filename"], item["content"]))
    return tuple(files)


def _output_schema(item: Mapping[str, Any], where: str) -> str | None:
    schema = item.get("output_schema")
    if schema is None:
        return None
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as exc:
            raise FixtureError(f"{where}: `output_schema` is not valid JSON: {exc}") from None
    if not isinstance(schema, Mapping):
        raise FixtureError(f"{where}: `output_schema` must be a JSON Schema object (a mapping or JSON text)")
    return json.dumps(schema)


def _rule(item: Any, where: str) -> FailRule:
    if not isinstance(item, Mapping) or not isinstance(item.get("input"), str) or "equals" not in item:
        raise FixtureError(f"{where}: a rule needs `input` (name) and `equals` (value)")
    unknown = set(item) - {"input", "equals", "status", "error", "machine"}
    if unknown:
        raise FixtureError(f"{where}: unknown keys {sorted(unknown)}")
    status = item.get("status", "task_failed")
    if status not in TERMINAL_STATUSES - {"success", "cancelled"}:
        raise FixtureError(f"{where}: `status` must be task_failed or error")
    return FailRule(item["input"], item["equals"], status, item.get("error"), item.get("machine"))
