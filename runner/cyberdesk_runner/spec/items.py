"""Items of a job: inline `items`, or rows of an `items_from` CSV / JSON Lines file, merged with `inputs`."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

from cyberdesk_runner.spec.diagnostics import describe
from cyberdesk_runner.spec.errors import JobFileError, SpecError, display_path
from cyberdesk_runner.spec.job import LoadedJob

__all__ = ["DataFile", "check_data_file", "load_items", "read_data_file"]

DataFile = tuple[list[dict[str, Any]], str]
"""The rows of a data file and the sha256 of its bytes."""


def load_items(job: LoadedJob) -> list[dict[str, Any]]:
    """The input sets of one fire: every item merged over `inputs` (item values win).

    Without items or items_from a fire is one run with `inputs`. The items file is read anew on each
    call; its errors (JobFileError) name the data file and line.
    """
    spec = job.spec
    if job.items_path is not None:
        items, _ = read_data_file(job.items_path, job)  # fresh objects, read for this call
    elif spec.items is not None:
        items = [dict(item) for item in copy.deepcopy(spec.items)]
    else:
        items = [{}]
    # One copy of the job's values per call, not per item (that cost more than reading the file): the input sets
    # are read-only from here on, so they may share `inputs`' nested values, never the job spec's own.
    inputs = copy.deepcopy(spec.inputs)
    return [{**inputs, **item} for item in items]


def read_data_file(path: Path, job: LoadedJob | None = None) -> DataFile:
    """Parse a CSV (header row -> keys, values as strings) or JSON Lines file (blank lines skipped).

    Raises JobFileError with every bad line. A missing file is reported at the job's `items_from` when
    `job` is given.
    """
    raw = _read_bytes(path, job)
    return _parse(path, raw), hashlib.sha256(raw).hexdigest()


def check_data_file(path: Path, job: LoadedJob | None = None) -> str:
    """The sha256 of a data file that parses; raises JobFileError like `read_data_file`.

    Job files are reloaded every few seconds: content already found valid is hashed, not parsed again.
    """
    raw = _read_bytes(path, job)
    digest = hashlib.sha256(raw).hexdigest()
    key = (path.suffix.lower() == ".csv", digest)
    if key not in _VALID_CONTENT:
        _parse(path, raw)
        _VALID_CONTENT[key] = None
        while len(_VALID_CONTENT) > _VALID_CONTENT_KEPT:
            del _VALID_CONTENT[next(iter(_VALID_CONTENT))]
    return digest


#: Digests of data file contents that parsed (by format), oldest first.
_VALID_CONTENT: dict[tuple[bool, str], None] = {}
_VALID_CONTENT_KEPT = 256


def _read_bytes(path: Path, job: LoadedJob | None) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        problem = (
            "file not found" if isinstance(exc, FileNotFoundError) else f"cannot read file ({exc.strerror})"
        )
        message = f"{problem}: {display_path(path)}"
        error = job.error_at(("items_from",), message) if job else SpecError(path, None, None, "", message)
        raise JobFileError([error]) from None


def _parse(path: Path, raw: bytes) -> list[dict[str, Any]]:
    try:
        text = raw.decode("utf-8-sig")  # spreadsheets often write a byte-order mark
    except UnicodeDecodeError as exc:
        raise JobFileError([SpecError(path, None, None, "", f"not UTF-8 text (byte {exc.start})")]) from None
    if path.suffix.lower() == ".csv":
        rows, errors = _read_csv(path, text)
    else:
        rows, errors = _read_json_lines(path, text)
    if errors:
        raise JobFileError(errors)
    return rows


def _read_csv(path: Path, text: str) -> tuple[list[dict[str, Any]], list[SpecError]]:
    rows: list[dict[str, Any]] = []
    errors: list[SpecError] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(SpecError(path, reader.line_num, None, "", f"invalid CSV: {exc}"))
            break  # the reader cannot resynchronise after a quoting error
        line, start = reader.line_num + 1, line  # a quoted value may span lines: report the row's first
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        if header is None:
            header = [name.strip() for name in row]
            errors.extend(_header_errors(path, start, header))
        elif len(row) != len(header):
            errors.append(
                SpecError(
                    path,
                    start,
                    None,
                    "",
                    f"expected {len(header)} values like the header row, got {len(row)}",
                )
            )
        else:
            rows.append(dict(zip(header, row, strict=True)))
    return rows, errors


def _header_errors(path: Path, line: int, header: list[str]) -> list[SpecError]:
    errors = []
    for index, name in enumerate(header):
        column = f"header column {index + 1}"
        if not name:
            errors.append(SpecError(path, line, None, "", f"{column} has no name"))
        elif name in header[:index]:
            errors.append(SpecError(path, line, None, "", f"{column}: {name!r} appears twice"))
        elif name.startswith("$"):
            errors.append(SpecError(path, line, None, "", f"{column}: {name!r}: input names have no '$'"))
    return errors


def _read_json_lines(path: Path, text: str) -> tuple[list[dict[str, Any]], list[SpecError]]:
    rows: list[dict[str, Any]] = []
    errors: list[SpecError] = []
    # Not splitlines(): it also splits on U+2028 and friends, which JSON strings may contain raw.
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(SpecError(path, line_number, exc.colno, "", f"invalid JSON: {exc.msg}"))
            continue
        if not isinstance(value, dict):
            errors.append(
                SpecError(path, line_number, 1, "", f"expected a JSON object, got {describe(value)}")
            )
        elif any(key.startswith("$") for key in value):
            errors.append(SpecError(path, line_number, 1, "", "input names have no '$'"))
        else:
            rows.append(value)
    return rows, errors


def input_columns(job: LoadedJob) -> set[str] | None:
    """The input names every item of the job has (its `inputs`, plus the keys all its items or data rows share);
    None when they are known only at fire time (items from an upstream job's output)."""
    spec = job.spec
    if spec.items_from_output is not None:
        return None
    if job.items_path is not None:
        rows: list[dict[str, Any]] = read_data_file(job.items_path, job)[0]
    else:
        rows = [dict(item) for item in spec.items or ({},)]
    shared = set.intersection(*(set(row) for row in rows)) if rows else set()
    return set(spec.inputs) | shared
