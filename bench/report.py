"""The benches' figures as JSON, so that two runs compare with one command (`bench/compare.py OLD NEW`).

Each bench collects its figures in a nested mapping (section -> figure -> number) and calls `write_json` with
the value of its `--json` option: a file path, or `-` for standard output (the tables then go to standard
error, so that the JSON can be piped). Figure names carry their unit (`_ms`, `_per_s`, `_mb`), and every
percentile figure a p50 has its p99 beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        metavar="PATH",
        nargs="?",
        const="-",
        default=None,
        help="also write the figures as JSON to PATH ('-' or no value: standard output, tables to stderr)",
    )


@contextlib.contextmanager
def tables_to_stderr(target: str | None) -> Iterator[None]:
    """With `--json -`, the human tables go to standard error and standard output holds only the JSON."""
    if target != "-":
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def write_json(target: str | None, bench: str, figures: Mapping[str, Any], **context: Any) -> None:
    """Writes `{"bench", "at", "context", "figures"}`; NaN (a figure not measured) is written as null."""
    if target is None:
        return
    document = {
        "bench": bench,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "context": {"cores": os.cpu_count(), **context},
        "figures": _finite(figures),
    }
    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        Path(target).write_text(text, encoding="utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
