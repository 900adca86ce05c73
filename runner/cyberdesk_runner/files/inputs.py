"""Files in: a job's `files:` -> the `file_inputs` of one attempt's create call, read when the run is created.

The bytes are read from disk at each create call and never copied into the store; the store keeps what was
read the first time (path, size, sha256: `store.files`), recorded before that first call. A create call
repeated with the same idempotency key (after a crash or an unknown outcome) reads the recorded paths again,
whatever the job file says now, and sends the bytes only if they are the same: a file changed or gone since
the record fails the attempt clearly instead of sending other bytes under the same key.

A file missing at the first call fails that item before any create call; the fire's other items go on.

Chains (multi-step jobs) send the same list once, as `shared_file_inputs`: `attach_files` returns SDK
`FileInput`s and knows nothing of the body they go in (dispatch.py puts them there).
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cyberdesk import UNSET, FileInput
from cyberdesk_runner.spec import LoadedJob
from cyberdesk_runner.spec.files import TemplateError, render_path
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.files import InputFile
from cyberdesk_runner.store.records import AttemptRef

__all__ = ["FileInputError", "attach_files"]


class FileInputError(Exception):
    """A file of `files:` that cannot be attached as it must be; the message says which and why."""


def attach_files(store: Store, job: LoadedJob | None, ref: AttemptRef) -> list[FileInput]:
    """The files of attempt `ref`, recorded (first call) or checked against the record (repeats)."""
    recorded = store.files.recorded_inputs(ref.id)
    contents: dict[int, bytes] = {}
    if not recorded:
        if job is None or not job.spec.files:
            return []
        planned: list[InputFile] = []
        for position, spec in enumerate(job.spec.files):
            where = f"files[{position}] ({spec.path!r}, relative to {job.path.name}'s folder)"
            try:
                path = job.resolve_path(render_path(spec.path, ref.inputs)).resolve()
            except TemplateError as exc:
                raise FileInputError(f"{where}: {exc}") from None
            data = _read(path, where)
            contents[position] = data
            planned.append(
                InputFile(
                    position,
                    str(path),
                    path.name,
                    len(data),
                    hashlib.sha256(data).hexdigest(),
                    spec.target_path,
                    spec.cleanup,
                )
            )
        recorded = store.files.record_inputs(ref.id, ref.fire_id, planned)
    return [_file_input(record, contents.get(record.position)) for record in recorded]


def _file_input(record: InputFile, data: bytes | None) -> FileInput:
    where = f"file {record.path}"
    if data is None:
        data = _read(Path(record.path), where)
    if len(data) != record.size or hashlib.sha256(data).hexdigest() != record.sha256:
        raise FileInputError(
            f"{where} changed since this attempt's first create call ({record.size:,} bytes, sha256 "
            f"{record.sha256[:12]}…, now {len(data):,} bytes): the repeat would send other bytes under the same "
            "idempotency key, so the attempt fails instead"
        )
    return FileInput(
        filename=record.filename,
        content=base64.b64encode(data).decode("ascii"),
        target_path=record.target_path if record.target_path is not None else UNSET,
        cleanup_imports_after_run=record.cleanup,
    )


def _read(path: Path, where: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FileInputError(f"{where}: file not found: {path}") from None
    except OSError as exc:
        raise FileInputError(f"{where}: cannot read {path} ({exc.strerror or exc})") from None
