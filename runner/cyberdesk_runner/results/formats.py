"""Writing a results table as CSV (RFC 4180, as Python's csv module writes it), JSON Lines or one JSON array.

Each writer takes the rows one at a time and writes each at once, so memory stays flat however many rows.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import Any, Literal, TextIO

from cyberdesk_runner.results.table import ResultTable
from cyberdesk_runner.store.results import ResultRow

Format = Literal["csv", "jsonl", "json"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl", "json")


def write_table(out: TextIO, table: ResultTable, rows: Iterable[ResultRow], fmt: Format) -> int:
    """Write `rows` under `table`'s columns to `out` in `fmt`; returns how many rows were written."""
    count = 0
    if fmt == "csv":
        # newline="" on the file is the caller's: csv writes \r\n line ends itself (RFC 4180).
        writer = csv.DictWriter(out, fieldnames=table.columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_cell(v) for k, v in table.values(row).items()})
            count += 1
        return count
    if fmt == "jsonl":
        for row in rows:
            out.write(_json(table.values(row)) + "\n")
            count += 1
        return count
    out.write("[")
    for row in rows:
        out.write(("\n" if count == 0 else ",\n") + _json(table.values(row)))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):  # the files column: relative paths, which never hold a ';' we made
        return ";".join(map(str, value))
    return value


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
