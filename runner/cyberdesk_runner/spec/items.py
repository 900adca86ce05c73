"""Items of a job: inline `items`, or rows of an `items_from` CSV / JSON Lines file, merged with `inputs`."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from cyberdesk_runner.spec.diagnostics import describe
from cyberdesk_runner.spec.errors import JobFileError, SpecError, display_path
from cyberdesk_runner.spec.job import LoadedJob

__all__ = [
    "DataFile",
    "DataStream",
    "check_data_file",
    "iter_items",
    "load_items",
    "read_data_file",
]

DataFile = tuple[list[dict[str, Any]], str]
"""The rows of a data file and the sha256 of its bytes."""


def load_items(job: LoadedJob) -> list[dict[str, Any]]:
    """The input sets of one fire: every item merged over `inputs` (item values win).

    Without items or items_from a fire is one run with `inputs`. The items file is read anew on each
    call; its errors (JobFileError) name the data file and line.
    """
    return list(iter_items(job)[0])


def iter_items(job: LoadedJob) -> tuple[Iterator[dict[str, Any]], DataStream | None]:
    """`load_items`' input sets one by one, and the stream of the items file they come from (its digest once
    read through), if any: a fire of 100,000 rows is planned without holding them all."""
    spec = job.spec
    stream = None
    if job.items_path is not None:
        stream = DataStream(job.items_path, job)  # fresh objects, read for this call
        items: Iterable[dict[str, Any]] = stream
    elif spec.items is not None:
        items = [dict(item) for item in copy.deepcopy(spec.items)]
    else:
        items = [{}]
    # One copy of the job's values per call, not per item (that cost more than reading the file): the input sets
    # are read-only from here on, so they may share `inputs`' nested values, never the job spec's own.
    inputs = copy.deepcopy(spec.inputs)
    return ({**inputs, **item} for item in items), stream


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
        _parse(path, raw, keep=False)
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
        raise _unreadable(path, job, exc) from None


class DataStream:
    """The rows of a data file read one by one, never the whole file at once (a fire of 100,000 rows plans in
    bounded memory). Iterate once; then `digest` is the sha256 of the bytes read, and the file's errors (every bad
    line, as `read_data_file` reports them) are raised as JobFileError when the iteration ends."""

    def __init__(self, path: Path, job: LoadedJob | None = None) -> None:
        self.path, self._job = path, job
        self._hash = hashlib.sha256()
        self.digest: str | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        path = self.path
        try:
            raw = path.open("rb", buffering=0)
        except OSError as exc:
            raise _unreadable(path, self._job, exc) from None
        reader = _HashingReader(raw, self._hash)
        csv_file = path.suffix.lower() == ".csv"
        # csv wants universal line ends (newline=""); JSON Lines splits on "\n" only, so that U+2028 and friends
        # inside a JSON string stay where they are.
        # Unbuffered below the text layer, so that a decoding error's position is the reader's last read + its
        # offset in that read.
        text = io.TextIOWrapper(reader, encoding="utf-8-sig", newline="" if csv_file else "\n")  # type: ignore[type-var]
        errors: list[SpecError] = []
        with text:
            try:
                for row in _csv_rows(path, text) if csv_file else _json_rows(path, text):
                    if isinstance(row, SpecError):
                        errors.append(row)
                    else:
                        yield row
            except UnicodeDecodeError as exc:
                errors = [_not_utf8(path, reader.before_last_read + exc.start)]
        self.digest = self._hash.hexdigest()
        if errors:
            raise JobFileError(errors)


class _HashingReader(io.RawIOBase):
    """A binary file that hashes what is read from it and knows where its last read began."""

    def __init__(self, raw: Any, digest: Any) -> None:
        self._raw, self._digest = raw, digest
        self.before_last_read = 0
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count: int = self._raw.readinto(buffer)
        self._digest.update(memoryview(buffer)[:count])
        self.before_last_read, self._read = self._read, self._read + count
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()


def _not_utf8(path: Path, byte: int) -> SpecError:
    return SpecError(path, None, None, "", f"not UTF-8 text (byte {byte})")


def _unreadable(path: Path, job: LoadedJob | None, exc: OSError) -> JobFileError:
    problem = "file not found" if isinstance(exc, FileNotFoundError) else f"cannot read file ({exc.strerror})"
    message = f"{problem}: {display_path(path)}"
    error = job.error_at(("items_from",), message) if job else SpecError(path, None, None, "", message)
    return JobFileError([error])


def _parse(path: Path, raw: bytes, *, keep: bool = True) -> list[dict[str, Any]]:
    """The rows of a data file's bytes (none kept unless `keep`: checking a file needs only its errors)."""
    try:
        text = raw.decode("utf-8-sig")  # spreadsheets often write a byte-order mark
    except UnicodeDecodeError as exc:
        raise JobFileError([_not_utf8(path, exc.start)]) from None
    if path.suffix.lower() == ".csv":
        parsed = _csv_rows(path, io.StringIO(text, newline=""))
    else:
        parsed = _json_rows(path, text.split("\n"))
    rows: list[dict[str, Any]] = []
    errors: list[SpecError] = []
    for row in parsed:
        if isinstance(row, SpecError):
            errors.append(row)
        elif keep:
            rows.append(row)
    if errors:
        raise JobFileError(errors)
    return rows


def _csv_rows(path: Path, lines: Iterable[str]) -> Iterator[dict[str, Any] | SpecError]:
    """Each row of a CSV text as a dict (header row -> keys), or the error of a bad one."""
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            yield SpecError(path, reader.line_num, None, "", f"invalid CSV: {exc}")
            break  # the reader cannot resynchronise after a quoting error
        line, start = reader.line_num + 1, line  # a quoted value may span lines: report the row's first
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        if header is None:
            header = [name.strip() for name in row]
            yield from _header_errors(path, start, header)
        elif len(row) != len(header):
            yield SpecError(
                path, start, None, "", f"expected {len(header)} values like the header row, got {len(row)}"
            )
        else:
            yield dict(zip(header, row, strict=True))


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


def _json_rows(path: Path, lines: Iterable[str]) -> Iterator[dict[str, Any] | SpecError]:
    """Each line of a JSON Lines text as a dict (blank lines skipped), or the error of a bad one."""
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield SpecError(path, line_number, exc.colno, "", f"invalid JSON: {exc.msg}")
            continue
        if not isinstance(value, dict):
            yield SpecError(path, line_number, 1, "", f"expected a JSON object, got {describe(value)}")
        elif any(key.startswith("$") for key in value):
            yield SpecError(path, line_number, 1, "", "input names have no '$'")
        else:
            yield value


def input_columns(job: LoadedJob) -> set[str] | None:
    """The input names every item of the job has (its `inputs`, plus the keys all its items or data rows share);
    None when they are known only at fire time (items from an upstream job's output)."""
    spec = job.spec
    if spec.items_from_output is not None:
        return None
    rows: Iterable[dict[str, Any]] = (
        DataStream(job.items_path, job)
        if job.items_path is not None
        else [dict(item) for item in spec.items or ({},)]
    )
    shared: set[str] | None = None
    for row in rows:  # streamed: a big items file is never held whole
        shared = set(row) if shared is None else shared & row.keys()
    return set(spec.inputs) | (shared or set())
