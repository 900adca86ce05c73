"""The job file model: `JobSpec` and its parts. Pure validation; nothing here touches the API or files."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

from cyberdesk_runner.durations import Duration, format_duration
from cyberdesk_runner.spec.budget import Budget
from cyberdesk_runner.spec.diagnostics import describe, field_error
from cyberdesk_runner.spec.files import FileInputSpec
from cyberdesk_runner.spec.schedule import ScheduleEntry

__all__ = [
    "After",
    "DATA_FILE_SUFFIXES",
    "JOB_NAME_PATTERN",
    "JobSpec",
    "MatchScalar",
    "RetryPolicy",
    "RetryableStatus",
    "SensitiveRef",
    "Step",
    "Target",
    "step_refs",
]

JOB_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
DATA_FILE_SUFFIXES = (".csv", ".jsonl", ".ndjson")
_ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_ALIAS_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
#: `{$ref: alias.outputs.path}`: the path is optional (the whole output).
_REF_PATTERN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]{0,63})\.outputs(\.[^.]+)*$")

MatchScalar = str | int | float | bool
RetryableStatus = Literal["error", "task_failed"]


def _check_job_name(name: str) -> str:
    if not re.match(JOB_NAME_PATTERN, name):
        raise ValueError(
            "expected 1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit, "
            f"got {name!r}"
        )
    return name


def _check_not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text


def _check_input_name(name: str) -> str:
    if name.startswith("$"):
        raise ValueError("input names have no '$'; secrets go under sensitive_inputs")
    return _check_not_blank(name)


def _check_sensitive_name(name: str) -> str:
    if name.startswith("$"):
        raise ValueError(f"write the name without '$' ({name[1:]!r}); the prompt refers to it as {{{name}}}")
    return _check_not_blank(name)


def _check_env_name(name: str) -> str:
    # Not quoted back: a secret pasted here by mistake must not reach the logs.
    if not re.match(_ENV_NAME_PATTERN, name):
        raise ValueError(
            "expected an environment variable name (letters, digits and _, not starting with a digit)"
        )
    return name


def _as_match_values(value: Any) -> tuple[MatchScalar, ...]:
    values = value if isinstance(value, list | tuple) else [value]
    if values and all(isinstance(v, MatchScalar) for v in values):
        return tuple(values)
    raise ValueError(
        f"expected a value or a list of values, like boston or [boston, new-york], got {describe(value)}"
    )


def _as_list(value: Any) -> Any:
    """Accept one entry where a list is expected (`schedule: {cron: ...}`, `on: error`)."""
    if value is None:
        return []
    return value if isinstance(value, list | tuple) else [value]


def _check_retryable(value: Any) -> Any:
    if value == "cancelled":
        raise ValueError("cancelled runs are never retried; retry.on takes error and task_failed")
    if value == "success":
        raise ValueError("successful runs are never retried; retry.on takes error and task_failed")
    return value


NonBlank = Annotated[str, AfterValidator(_check_not_blank)]
InputName = Annotated[str, AfterValidator(_check_input_name)]
SensitiveName = Annotated[str, AfterValidator(_check_sensitive_name)]
MatchValues = Annotated[
    tuple[MatchScalar, ...],
    PlainValidator(_as_match_values),
    # Without an explicit serializer pydantic warns when dumping the validated tuple to JSON.
    PlainSerializer(list, return_type=list[MatchScalar]),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": ["string", "number", "boolean"]},
                {"type": "array", "items": {"type": ["string", "number", "boolean"]}, "minItems": 1},
            ]
        }
    ),
]


def _scalar_text(value: MatchScalar) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


class Target(BaseModel):
    """Which desktops may run the job. Every condition given must hold (pool AND machines AND match)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Target desktops")

    pool: NonBlank | None = Field(
        None, description="Name or id of a Cyberdesk pool.", examples=["claims-team"]
    )
    machines: Annotated[tuple[NonBlank, ...], Field(min_length=1)] | None = Field(
        None, description="Names or ids of desktops.", examples=[["bos-desk-01", "bos-desk-02"]]
    )
    match: Annotated[dict[NonBlank, MatchValues], Field(min_length=1)] | None = Field(
        None,
        description="Desktop parameters the desktop must have: name -> value, or name -> list of accepted values.",
        examples=[{"site": "boston"}, {"site": ["boston", "new-york"]}],
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.pool is None and self.machines is None and self.match is None:
            raise field_error("give at least one of pool, machines or match")
        if self.machines is not None:
            for index, machine in enumerate(self.machines):
                if machine in self.machines[:index]:
                    raise field_error(f"{machine!r} is listed twice", "machines", index)
        return self

    def describe(self) -> str:
        """Short text for listings, e.g. `pool claims-team` or `match site=boston|new-york`."""
        parts = []
        if self.pool is not None:
            parts.append(f"pool {self.pool}")
        if self.machines is not None:
            parts.append(f"machines {','.join(self.machines)}")
        if self.match is not None:
            parts.append(
                "match " + " ".join(f"{k}={'|'.join(map(_scalar_text, v))}" for k, v in self.match.items())
            )
        return ", ".join(parts)


class SensitiveRef(BaseModel):
    """Where a sensitive input's value is read at dispatch time: exactly one of `env` or `file`."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="Sensitive input reference",
        json_schema_extra={"oneOf": [{"required": ["env"]}, {"required": ["file"]}]},
    )

    env: Annotated[str, AfterValidator(_check_env_name)] | None = Field(
        None,
        description="Environment variable holding the value.",
        json_schema_extra={"pattern": _ENV_NAME_PATTERN},
        examples=["PORTAL_TOKEN"],
    )
    file: NonBlank | None = Field(
        None,
        description="File holding the value (relative to the job file; one trailing newline is dropped).",
        examples=["secrets/portal-token.txt"],
    )

    @model_validator(mode="before")
    @classmethod
    def _reject_literal(cls, data: Any) -> Any:
        # Never quote `data` here: it is probably the secret itself.
        if not isinstance(data, dict):
            raise ValueError("give a reference {env: NAME} or {file: PATH}, not a value")
        return data

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.env is None and self.file is None:
            raise field_error("give a reference {env: NAME} or {file: PATH}")
        if self.env is not None and self.file is not None:
            raise field_error("give either env or file, not both", "file")
        return self

    def describe(self) -> str:
        return f"env {self.env}" if self.env is not None else f"file {self.file}"


class RetryPolicy(BaseModel):
    """How failed runs of an item are retried, with exponential backoff between attempts."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Retry policy")

    max_attempts: int = Field(3, ge=1, description="Most runs per item, the first one included.")
    backoff: Duration = Field(
        timedelta(seconds=30), description="Delay before the first retry; it doubles for each further retry."
    )
    max_backoff: Duration = Field(timedelta(minutes=10), description="Longest delay between two attempts.")
    on: Annotated[
        tuple[Annotated[RetryableStatus, BeforeValidator(_check_retryable)], ...],
        BeforeValidator(_as_list, json_schema_input_type=RetryableStatus | list[RetryableStatus]),
    ] = Field(
        ("error", "task_failed"),
        description="Terminal run statuses that are retried: error (infrastructure or agent error) and/or "
        "task_failed (the agent could not do the task). Cancelled runs are never retried.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.backoff > self.max_backoff:
            raise field_error(
                f"backoff ({format_duration(self.backoff)}) is longer than max_backoff "
                f"({format_duration(self.max_backoff)})",
                "backoff",
            )
        return self


def _check_alias(alias: str) -> str:
    if not re.match(_ALIAS_PATTERN, alias):
        raise ValueError(
            f"expected a name of letters, digits and _ (not starting with a digit), got {alias!r}"
        )
    return alias


def step_refs(inputs: Any) -> list[tuple[str, str]]:
    """(input name, reference) of every `{$ref: ...}` value among a step's inputs (top level, as the API)."""
    found = []
    for name, value in (inputs or {}).items():
        if isinstance(value, dict) and "$ref" in value:
            found.append((str(name), str(value["$ref"])))
    return found


class Step(BaseModel):
    """One step of a multi-step job: a workflow run on the session's desktop after the steps before it."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Step")

    workflow: NonBlank = Field(description="Name or id of the Cyberdesk workflow of this step.")
    alias: Annotated[str, AfterValidator(_check_alias)] | None = Field(
        None,
        description="Name under which later steps read this step's outputs: {$ref: ALIAS.outputs.PATH}.",
        json_schema_extra={"pattern": _ALIAS_PATTERN},
        examples=["signin"],
    )
    inputs: dict[InputName, JsonValue] = Field(
        default_factory=dict,
        description="This step's own inputs (they win over the item's values): static values or "
        "{$ref: ALIAS.outputs.PATH} to an earlier step's output.",
    )
    sensitive_inputs: dict[SensitiveName, SensitiveRef] = Field(
        default_factory=dict, description="This step's own secret inputs, as references ({env} or {file})."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        for name, value in self.inputs.items():
            if isinstance(value, dict) and "$ref" in value:
                ref = value["$ref"]
                if set(value) != {"$ref"} or not isinstance(ref, str) or not _REF_PATTERN.match(ref):
                    raise field_error(
                        "a reference is {$ref: ALIAS.outputs.PATH}, e.g. {$ref: signin.outputs.chart_id}",
                        "inputs",
                        name,
                    )
        return self


class After(BaseModel):
    """Fire this job when a fire of another job ends."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="After another job")

    job: Annotated[str, AfterValidator(_check_job_name)] = Field(
        description="The upstream job: each of its fires that ends (as `when` says) fires this job once.",
        examples=["extract-claims"],
    )
    when: Literal["succeeded", "failed", "finished"] = Field(
        "succeeded",
        description="succeeded: every item of the upstream fire succeeded; failed: some failed; finished: any "
        "outcome.",
    )


def _check_results_path(path: str) -> str:
    from cyberdesk_runner.results.paths import template_problem

    problem = template_problem(path)
    if problem is not None:
        raise ValueError(problem)
    return path


class ResultsSpec(BaseModel):
    """The result file written once when a fire ends."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Result file")

    path: Annotated[str, AfterValidator(_check_results_path)] = Field(
        description="File per fire, relative to the config file's folder; placeholders {job}, {fire} and "
        "{fire_created:<strftime format>}.",
        examples=["results/{job}/{fire_created:%Y-%m-%d_%H%M}_{fire}.csv"],
    )
    format: Literal["csv", "jsonl"] = Field("csv", description="csv (RFC 4180) or jsonl (JSON Lines).")


class JobSpec(BaseModel):
    """One job: which workflow to run, on which desktops, with which inputs, and when."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="Cyberdesk runner job",
        json_schema_extra={"oneOf": [{"required": ["workflow"]}, {"required": ["steps"]}]},
    )

    name: Annotated[str, AfterValidator(_check_job_name)] = Field(
        description="Unique job name: 1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit.",
        json_schema_extra={"pattern": JOB_NAME_PATTERN},
        examples=["submit-claims"],
    )
    description: str | None = Field(None, description="Free text for people reading the job.")
    workflow: NonBlank | None = Field(
        None,
        description="Name or id of the Cyberdesk workflow to run (or give steps).",
        examples=["Submit insurance claim"],
    )
    steps: Annotated[tuple[Step, ...], Field(min_length=1)] | None = Field(
        None,
        description="Workflows run in order on one desktop session, one Cyberdesk chain per item attempt (or "
        "give workflow). The item's values are shared by every step.",
    )
    keep_session: bool = Field(
        False, description="Keep the desktop reserved for the session after the last step (steps only)."
    )
    after: After | None = Field(
        None, title="After another job", description="Fire this job when a fire of another job ends."
    )
    items_from_output: NonBlank | None = Field(
        None,
        description="With after: one item per element of the list at this path in the output of each succeeded "
        "upstream item (a mapping gives one item). For a multi-step upstream job the path may start with a "
        "step alias; otherwise it reads the last step's output.",
        examples=["claims", "signin.chart_ids"],
    )
    target: Target = Field(description="Which desktops may run the job.")
    fan_out: Literal["items", "machines"] = Field(
        "items",
        description="items: each item runs once, on any matching desktop. machines: each item runs once on "
        "every matching desktop.",
    )
    inputs: dict[InputName, JsonValue] = Field(
        default_factory=dict, description="Input values given to every run; an item's own values win."
    )
    items: Annotated[tuple[dict[InputName, JsonValue], ...], Field(min_length=1)] | None = Field(
        None, description="Input sets, one run (per desktop with fan_out: machines) each."
    )
    items_from: NonBlank | None = Field(
        None,
        description="CSV (header row = input names) or JSON Lines file of input sets, relative to the job file. "
        "Read at every fire.",
        examples=["data/claims.csv"],
    )
    sensitive_inputs: dict[SensitiveName, SensitiveRef] = Field(
        default_factory=dict,
        description="Secret inputs (the prompt's {$name}) as references read at dispatch time, never values.",
        examples=[{"password": {"env": "PORTAL_PASSWORD"}}],
    )
    concurrency: int = Field(10, ge=1, description="Most runs of this job in flight at once.")
    priority: bool = Field(False, description="Ask Cyberdesk to run these runs before non-priority ones.")
    timeout: Duration = Field(
        timedelta(hours=2),
        description="A run not finished by then is cancelled and counts as a failed attempt.",
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy, description="Retries of failed runs.")
    schedule: Annotated[
        tuple[ScheduleEntry, ...],
        BeforeValidator(_as_list, json_schema_input_type=ScheduleEntry | list[ScheduleEntry]),
    ] = Field((), description="One schedule entry or a list of them; none means manual triggers only.")
    catchup: Literal["none", "latest", "all"] = Field(
        "latest",
        description="Fires missed while the daemon was down: none are made up, only the latest, or all "
        "(each at most max_delay late).",
    )
    max_delay: Duration = Field(
        timedelta(hours=1), description="A fire later than this after its slot is skipped, not run."
    )
    overlap: Literal["forbid", "allow", "replace"] = Field(
        "forbid",
        description="When a fire comes while the previous fire still has runs in flight: skip it (forbid), run "
        "both (allow), or cancel the previous runs (replace).",
    )

    results: ResultsSpec | None = Field(
        None, title="Result file", description="Write the fire's results table to a file when it ends."
    )
    late_after: Duration = Field(
        timedelta(minutes=5),
        description="A scheduled fire with no run created this long after its slot raises a fire_late alert.",
    )
    files: tuple[FileInputSpec, ...] = Field(
        (), description="Files attached to each run, read when it is created (not copied into the store)."
    )
    budget: Budget | None = Field(
        None, title="Budget", description="What one fire may spend before it stops creating runs."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.workflow is None and self.steps is None:
            raise field_error("required key is missing (or give steps)", "workflow")
        if self.workflow is not None and self.steps is not None:
            raise field_error("give workflow or steps, not both", "steps")
        if self.keep_session and self.steps is None:
            raise field_error("keep_session applies to steps only", "keep_session")
        if self.items is not None and self.items_from is not None:
            raise field_error("give items or items_from, not both", "items_from")
        if self.items_from_output is not None:
            if self.after is None:
                raise field_error(
                    "items_from_output reads an upstream job's outputs: give after", "items_from_output"
                )
            if self.items is not None or self.items_from is not None:
                raise field_error("give items_from_output or items/items_from, not both", "items_from_output")
        self._check_steps()
        if self.items_from is not None and not self.items_from.lower().endswith(DATA_FILE_SUFFIXES):
            raise field_error(
                f"unsupported file type {self.items_from!r}: use .csv or .jsonl (JSON Lines)", "items_from"
            )
        return self

    def _check_steps(self) -> None:
        """Aliases are unique, and every $ref names the alias of an earlier step."""
        seen: list[str] = []
        for index, step in enumerate(self.steps or ()):
            for name, ref in step_refs(step.inputs):
                alias = ref.split(".", 1)[0]
                if alias not in seen:
                    later = any(s.alias == alias for s in (self.steps or ())[index:])
                    known = ", ".join(seen) or "none"
                    why = "is not an earlier step" if later else "is not the alias of any step"
                    raise field_error(
                        f"$ref {ref!r}: {alias!r} {why} (aliases before this step: {known})",
                        "steps",
                        index,
                        "inputs",
                        name,
                    )
            if step.alias is not None:
                if step.alias in seen:
                    raise field_error(
                        f"alias {step.alias!r} is used by an earlier step", "steps", index, "alias"
                    )
                seen.append(step.alias)

    @property
    def workflows(self) -> tuple[str, ...]:
        """The workflow of each step in order (one for a single-workflow job)."""
        if self.steps is not None:
            return tuple(step.workflow for step in self.steps)
        return (self.workflow,) if self.workflow is not None else ()
