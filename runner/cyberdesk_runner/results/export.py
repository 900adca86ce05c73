"""One fire's results from the store to a text stream: plan the columns, then write the rows (two streamed
passes over the store, neither holding the table)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TextIO

from cyberdesk_runner.results.formats import Format, write_table
from cyberdesk_runner.results.table import ResultTable
from cyberdesk_runner.store import Store


def export_results(
    store: Store,
    fire_id: str,
    job_name: str,
    out: TextIO,
    fmt: Format,
    *,
    status: str | None = None,
    files: Mapping[str, Sequence[str]] | None = None,
) -> int:
    """Write the results of `fire_id` (a fire of `job_name`) to `out`; returns the number of rows. `files`:
    item id -> the relative paths of its output files, for the `files` column."""
    job = store.jobs.get(job_name)
    sensitive = tuple((job.definition.get("sensitive_inputs") or {}) if job is not None else ())
    table = ResultTable.plan(store.results.result_rows(fire_id, status=status), sensitive, files)
    return write_table(out, table, store.results.result_rows(fire_id, status=status), fmt)
