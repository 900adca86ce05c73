"""One fire's results from the store to a text stream: plan the columns over the items where each key first
appears (the database finds them), then stream the rows, so the header and first rows come out at once."""

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
    first = store.results.column_seqs(fire_id, status=status)
    table = ResultTable.plan(store.results.result_rows(fire_id, status=status, seqs=first), sensitive, files)
    return write_table(out, table, store.results.result_rows(fire_id, status=status), fmt)
