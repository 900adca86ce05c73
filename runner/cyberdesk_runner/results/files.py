"""Result files: each fire's table written once, atomically, when the fire ends.

The store records "fire F needs its file" in the transaction that ends the fire (`store.outbox`), so a crash
before writing leaves the claim pending and the file is written after the restart. The table goes to a
temporary file in the target folder, then is linked into place with `os.link`, which refuses to replace an
existing file: a fire whose file exists (written before a crash that lost the record, or by another daemon)
is never rewritten, and a reader never sees half a file.

The output attachments of the fire's runs go next to it, in the folder named like the file without its suffix
(`files/outputs.py`); the daemon records them before the file is written, so its `files` column names them all.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Collection, Mapping
from datetime import datetime
from pathlib import Path

import attrs
import structlog

from cyberdesk_runner.files.outputs import planned_paths
from cyberdesk_runner.results.export import export_results
from cyberdesk_runner.results.formats import Format
from cyberdesk_runner.results.paths import result_path
from cyberdesk_runner.store import Store

log = structlog.get_logger("cyberdesk_runner.results")


@attrs.frozen
class ResultFileRule:
    template: str
    format: Format


def outputs_folder(path: Path) -> Path:
    """Where the output attachments of a result file's fire go: `<folder>/<file stem>`."""
    return path.with_suffix("")


def result_file_path(store: Store, fire_id: str, job_name: str, template: str, base: Path) -> Path | None:
    """The path of a fire's result file (None when the fire is gone)."""
    fire = store.queries.fire_view(fire_id)
    if fire is None:
        return None
    return result_path(template, base, job=job_name, fire=fire_id, fire_created=fire.created_at)


def write_pending_result_files(
    store: Store,
    rules: Mapping[str, ResultFileRule],
    base: Path,
    now: datetime,
    *,
    not_yet: Collection[str] = (),
) -> list[tuple[str, str]]:
    """Write the files of fires that ended (but those in `not_yet`); returns (fire id, status) of each one
    settled."""
    settled = []
    for fire_id, job_name, fmt in store.outbox.pending_result_files():
        if fire_id in not_yet:
            continue
        rule = rules.get(job_name)
        template = rule.template if rule is not None else None
        if template is None:
            store.outbox.result_file_settled(
                fire_id, "failed", None, now, "the job no longer has a results: path"
            )
            settled.append((fire_id, "failed"))
            continue
        settled.append((fire_id, write_result_file(store, fire_id, job_name, template, fmt, base, now)))
    return settled


def write_result_file(
    store: Store, fire_id: str, job_name: str, template: str, fmt: str, base: Path, now: datetime
) -> str:
    """Write one fire's file unless it exists; record and return its status (written | existed | failed)."""
    path = result_file_path(store, fire_id, job_name, template, base)
    if path is None:  # purged meanwhile
        return "failed"
    status, error = "written", None
    try:
        if path.exists():
            status = "existed"
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            status = _write_once(store, fire_id, job_name, fmt, path)
    except OSError as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc.strerror or exc}"
    store.outbox.result_file_settled(fire_id, status, str(path), now, error)
    log.info("result_file", fire=fire_id, job=job_name, path=str(path), status=status, error=error)
    return status


def _write_once(store: Store, fire_id: str, job_name: str, fmt: str, path: Path) -> str:
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a crash mid-write
        stale.unlink(missing_ok=True)
    temp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        with temp.open("w", encoding="utf-8", newline="") as out:
            files = planned_paths(store, fire_id, outputs_folder(path))
            export_results(store, fire_id, job_name, out, _format(fmt), files=files)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temp, path)  # unlike rename, never replaces a file already there
        except FileExistsError:
            return "existed"
        return "written"
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def _format(value: str) -> Format:
    if value == "jsonl":
        return "jsonl"
    return "csv"
