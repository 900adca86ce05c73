"""A fire's results as a table with a stable column order.

Columns: `item`, `seq`, `status`, `attempts`, `desktop`, `run_id`; each input (sensitive ones by name, valued
`***`); `output.<key>` per top-level key of the final run's output (`output.<alias>.<key>` for the steps of a
multi-step item); `tokens` and `billed_seconds` (the item's runs, every attempt counted); `files`: the paths of
the item's output attachments, relative to the result file's folder (`files/outputs.py`; `;`-separated in CSV, a
list in JSON); `error`. Nested output values are JSON text.

The columns are planned over the rows before the table is written (keys only, in the order first seen, which is
item order then the outputs' own key order): over the few items where a key first appears (`store.results`
finds them), which names the columns as a pass over every row would. The table is then written one row at a time:
a 100,000-item fire never sits in memory.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import attrs

from cyberdesk_runner.store.results import ResultRow, StepOutput

MASK = "***"
LEADING_COLUMNS = ("item", "seq", "status", "attempts", "desktop", "run_id")
TRAILING_COLUMNS = ("tokens", "billed_seconds", "files", "error")


def output_values(outputs: Iterable[StepOutput], sensitive: Collection[str] = ()) -> dict[str, Any]:
    """An attempt's outputs as column values: `output.<key>` for a single run, `output.<alias>.<key>` for steps.

    Scalars stay as they are; lists and objects become JSON text. Keys named like a sensitive input are masked.
    """
    values: dict[str, Any] = {}
    for step in outputs:
        if not isinstance(step.output, Mapping):
            continue
        prefix = "output." if step.alias is None else f"output.{step.alias}."
        for key, value in step.output.items():
            if key in sensitive:
                value = MASK
            elif isinstance(value, (dict, list)):
                value = json.dumps(value, ensure_ascii=False, sort_keys=False)
            values[prefix + key] = value
    return values


def _input_column(name: str) -> str:
    # An input named like a fixed column keeps its own column.
    return f"input.{name}" if name in LEADING_COLUMNS or name in TRAILING_COLUMNS else name


@attrs.define
class ResultTable:
    """The column plan of one fire's results, and each row's values under it."""

    sensitive: tuple[str, ...]
    input_names: dict[str, None] = attrs.field(factory=dict)
    output_columns: dict[str, None] = attrs.field(factory=dict)
    #: item id -> relative paths of its output files (`files/outputs.py`).
    files: Mapping[str, Sequence[str]] = attrs.field(factory=dict)

    @classmethod
    def plan(
        cls,
        rows: Iterable[ResultRow],
        sensitive: Collection[str],
        files: Mapping[str, Sequence[str]] | None = None,
    ) -> ResultTable:
        table = cls(tuple(sorted(sensitive)), files=files or {})
        for row in rows:
            for name in row.inputs:
                if name not in table.sensitive:
                    table.input_names.setdefault(name)
            for column in output_values(row.outputs):
                table.output_columns.setdefault(column)
        return table

    @property
    def columns(self) -> list[str]:
        inputs = [_input_column(n) for n in self.input_names] + [_input_column(n) for n in self.sensitive]
        return [*LEADING_COLUMNS, *inputs, *self.output_columns, *TRAILING_COLUMNS]

    def values(self, row: ResultRow) -> dict[str, Any]:
        """The row under this plan: every column present (None where the row has no value)."""
        values: dict[str, Any] = {
            "item": row.item_id,
            "seq": row.seq,
            "status": row.status,
            "attempts": row.attempts,
            "desktop": row.desktop,
            "run_id": row.run_id,
        }
        for name in self.input_names:
            values[_input_column(name)] = row.inputs.get(name)
        for name in self.sensitive:
            values[_input_column(name)] = MASK
        outputs = output_values(row.outputs, self.sensitive)
        for column in self.output_columns:
            values[column] = outputs.get(column)
        values["tokens"] = row.tokens
        values["billed_seconds"] = row.billed_seconds
        values["files"] = list(self.files[row.item_id]) if row.item_id in self.files else None
        values["error"] = row.error
        return values
