"""Files out: the output attachments of a fire's runs, downloaded once each into `<folder>/<seq>-<item>/<filename>`
(`<folder>/<seq>-<item>/<step>/<filename>` for a multi-step job, `<step>` being the step's alias or number).

Two steps, each safe to repeat and to run in several daemons at once:

1. `note_fire_outputs` lists the output attachments of the final attempt of every item of a fire (of each of its
   step runs, for a multi-step job) and records one `output_file` row per (attempt, attachment, folder), with
   the path it goes to (`store.files`, unique). For a job with `results:`
   the folder is the result file's path without its suffix, and this runs before the result file is written,
   so its `files` column can name every file (`planned_paths`).
2. `download_round` claims pending rows (SKIP LOCKED, held for a lease) and streams each attachment with the
   SDK's `download_to` into a staging file named for this download alone (`.<filename>.<random>.dl`, itself
   written as `.part` until whole and as long as the server said). Its size is checked against the
   attachment's, then it is renamed into place (atomic) and the row is marked done once. The lease is not
   renewed: when a download outlasts it and a second daemon takes the row, the two write separate staging
   files, each rename puts a whole file in place, and the first to finish settles the row (`store.files`).
   A daemon killed mid-download leaves a staging file and a claim that lapses: the next claimer downloads
   again from the start (the API serves no ranges) and, once the row is settled, removes the leftovers. A file
   found already whole (killed after the rename, before the record) is only recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import secrets
from datetime import datetime, timedelta
from pathlib import Path

import attrs

from cyberdesk import AttachmentType, CyberdeskClient, CyberdeskError
from cyberdesk_runner.logs import get_logger
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.files import NewOutputFile, OutputFile

__all__ = [
    "DownloadRound",
    "OutputListingError",
    "download_round",
    "note_fire_outputs",
    "output_relative_path",
    "planned_paths",
]

log = get_logger(__name__)

#: How long a claimed download is this daemon's (not renewed: a longer download may be taken by a second daemon,
#: which is safe, see the module's docstring).
DOWNLOAD_HOLD = timedelta(minutes=10)
#: Downloads made side by side by one daemon.
_PARALLEL = 8


class OutputListingError(Exception):
    """The API did not list a run's attachments (down, rate limited): try the fire again later."""


def _plain_name(filename: str) -> str:
    """The server's file name cut down to a plain name (no folders, no `..`), never empty."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name if name not in ("", ".", "..") else "attachment"


def output_relative_path(folder: str, seq: int, item_id: str, filename: str, step: str | None = None) -> str:
    """Where an attachment goes, relative to `folder`'s parent: `<folder name>/<seq>-<item>/<filename>`, or
    `<folder name>/<seq>-<item>/<step>/<filename>` for a step run of a multi-step job (so that two steps
    exporting the same name never collide)."""
    step_folder = f"{_plain_name(step)}/" if step is not None else ""
    return f"{Path(folder).name}/{seq}-{item_id}/{step_folder}{_plain_name(filename)}"


def _relative_path(f: OutputFile) -> str:
    # Rows noted before the path was recorded with them (single-run jobs only) get it computed.
    return f.relative_path or output_relative_path(f.folder, f.seq, f.item_id, f.filename)


def planned_paths(store: Store, fire_id: str, folder: Path) -> dict[str, list[str]]:
    """item id -> relative paths of its attachments bound for `folder` (whether downloaded yet or not)."""
    paths: dict[str, list[str]] = {}
    for f in store.files.outputs_of_fire(fire_id):
        if f.folder == str(folder):
            paths.setdefault(f.item_id, []).append(_relative_path(f))
    return paths


async def note_fire_outputs(
    store: Store, client: CyberdeskClient, fire_id: str, job_name: str, folder: Path
) -> int:
    """Record the output attachments of the fire's runs as downloads into `folder`; returns how many were new.

    Raises OutputListingError when the API does not answer: nothing is lost, the caller asks again later.
    """
    runs = await asyncio.to_thread(store.files.final_runs_of_fire, fire_id)
    noted = 0
    for run in runs:
        found: list[NewOutputFile] = []
        try:
            attachments = [
                a
                async for a in client.run_attachments.iter(
                    run_id=run.run_id, attachment_type=AttachmentType.OUTPUT
                )
            ]
        except CyberdeskError as exc:
            raise OutputListingError(f"listing the attachments of run {run.run_id}: {exc.error}") from None
        for attachment in attachments:
            found.append(
                NewOutputFile(
                    run.attempt_id,
                    str(attachment.id),
                    fire_id,
                    run.item_id,
                    job_name,
                    run.seq,
                    attachment.filename,
                    attachment.size_bytes,
                    str(folder),
                    output_relative_path(str(folder), run.seq, run.item_id, attachment.filename, run.step),
                )
            )
        noted += await asyncio.to_thread(store.files.note_outputs, found)
    return noted


@attrs.frozen
class DownloadRound:
    downloaded: int = 0
    existed: int = 0
    failed: int = 0
    bytes: int = 0


async def download_round(
    store: Store, client: CyberdeskClient, now: datetime, *, limit: int = 32, folder: Path | None = None
) -> DownloadRound:
    """Claim pending downloads (only those bound for `folder`, when given) and make them; returns what
    happened."""
    claimed = await asyncio.to_thread(
        store.files.claim_downloads,
        now,
        DOWNLOAD_HOLD,
        limit=limit,
        folder=str(folder) if folder is not None else None,
    )
    if not claimed:
        return DownloadRound()
    gate = asyncio.Semaphore(_PARALLEL)

    async def one(f: OutputFile) -> tuple[str, int]:
        async with gate:
            return await _download(store, client, f, now)

    results = await asyncio.gather(*(one(f) for f in claimed))
    return DownloadRound(
        downloaded=sum(1 for status, _ in results if status == "downloaded"),
        existed=sum(1 for status, _ in results if status == "existed"),
        failed=sum(1 for status, _ in results if status == "failed"),
        bytes=sum(size for status, size in results if status == "downloaded"),
    )


async def _download(store: Store, client: CyberdeskClient, f: OutputFile, now: datetime) -> tuple[str, int]:
    relative = _relative_path(f)
    target = Path(f.folder).parent / relative
    # This download's own staging file: a second claimant (after the lease lapsed) never writes into it.
    staging = target.with_name(f".{target.name}.{secrets.token_hex(6)}.dl")
    status = "existed"
    try:
        if not (target.is_file() and (f.size is None or target.stat().st_size == f.size)):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                response = await client.run_attachments.download_to(f.attachment_id, staging)
                if response.error is not None:
                    raise OSError(str(response.error))
                got = staging.stat().st_size
                if f.size is not None and got != f.size:
                    raise OSError(f"got {got:,} bytes, the attachment has {f.size:,}")
                # Atomic: a reader (or another claimant) sees a whole file or none.
                os.replace(staging, target)
            finally:
                staging.unlink(missing_ok=True)
            status = "downloaded"
        size = target.stat().st_size
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.warning("output_file_failed", fire=f.fire_id, item=f.item_id, file=relative, error=error)
        delay = timedelta(seconds=min(5 * 2**f.tries, 600))
        await asyncio.to_thread(store.files.download_failed, f.id, error, now + delay)
        return "failed", 0
    if await asyncio.to_thread(store.files.download_done, f.id, relative, size, now):
        _remove_leftovers(target)
    else:
        status = "existed"  # another claimant finished first and settled it
    log.info("output_file", fire=f.fire_id, item=f.item_id, file=relative, status=status, bytes=size)
    return status, size if status == "downloaded" else 0


def _remove_leftovers(target: Path) -> None:
    """Staging files of downloads of `target` that died (a killed daemon), once its row is settled. A claimant
    still writing one loses it and fails harmlessly: the row is done, its failure is not recorded."""
    pattern = glob.escape(str(target.with_name(f".{target.name}."))) + "*.dl*"
    for leftover in [*glob.glob(pattern), str(target) + ".part"]:
        with contextlib.suppress(OSError):
            os.unlink(leftover)
