"""Run attachments: the files of runs, input ones from `file_inputs` and output ones a run exported.

Emulator choice (the API documents none): a successful run of a workflow with `includes_file_exports` exports one
CSV naming the run and its inputs, or the files of its `exports` templates (from `add_workflow` or a fixture).
"""

from __future__ import annotations

import csv
import io
import mimetypes
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from cyberdesk.emulator.errors import NotFound
from cyberdesk.emulator.ids import IdFactory
from cyberdesk.emulator.records import Attachment, Run, Workflow


@dataclass(frozen=True, slots=True)
class FileUpload:
    """A decoded `FileInput`: the bytes pushed to the desktop before the run."""

    filename: str
    content: bytes
    target_path: str | None = None
    cleanup: bool = False


def content_type_of(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


class Attachments:
    """Every attachment by id; a run lists its own in `input_attachment_ids` / `output_attachment_ids`."""

    def __init__(self, ids: IdFactory) -> None:
        self.ids = ids
        self.by_id: dict[str, Attachment] = {}

    def get(self, attachment_id: str) -> Attachment:
        found = self.by_id.get(attachment_id)
        if found is None:
            raise NotFound("Attachment not found")
        return found

    def __iter__(self) -> Iterator[Attachment]:
        return iter(self.by_id.values())

    def attach(
        self,
        run: Run,
        filename: str,
        content: bytes,
        content_type: str,
        attachment_type: str,
        now: float,
        target_path: str | None = None,
        cleanup_imports_after_run: bool = False,
        expires_at: float | None = None,
    ) -> Attachment:
        """Stores a file of the run and lists it in the run's input or output attachment ids."""
        attachment = Attachment(
            self.ids.uuid(),
            run.id,
            filename,
            content_type,
            attachment_type,
            content,
            now,
            target_path,
            cleanup_imports_after_run,
            expires_at,
        )
        self.by_id[attachment.id] = attachment
        if attachment_type == "input":
            run.input_attachment_ids = [*(run.input_attachment_ids or ()), attachment.id]
        else:
            run.output_attachment_ids = [*(run.output_attachment_ids or ()), attachment.id]
        return attachment

    def replace_inputs(self, run: Run, files: Iterable[FileUpload], now: float) -> None:
        """The run's input files become `files` (create, and retry with `file_inputs`)."""
        for attachment_id in run.input_attachment_ids or ():
            self.by_id.pop(attachment_id, None)
        run.input_attachment_ids = None
        for f in files:
            self.attach(
                run,
                f.filename,
                f.content,
                content_type_of(f.filename),
                "input",
                now,
                f.target_path,
                f.cleanup,
            )

    def clear_outputs(self, run: Run) -> None:
        for attachment_id in run.output_attachment_ids or ():
            self.by_id.pop(attachment_id, None)
        run.output_attachment_ids = None

    def export(self, run: Run, workflow: Workflow, now: float) -> None:
        """What an ended run of `workflow` leaves: files when it succeeded and the workflow exports."""
        if run.status == "success" and workflow.includes_file_exports:
            for filename, content, content_type in exported_files(run, workflow):
                self.attach(run, filename, content, content_type, "output", now)

    def forget_run(self, run: Run) -> None:
        """Drops every file of a deleted run (the real API deletes them with it)."""
        for attachment_id in [*(run.input_attachment_ids or ()), *(run.output_attachment_ids or ())]:
            self.by_id.pop(attachment_id, None)

    def delete(self, attachment_id: str, runs: dict[str, Run]) -> None:
        attachment = self.by_id.pop(attachment_id, None)
        if attachment is None:
            raise NotFound("Attachment not found")
        run = runs.get(attachment.run_id)
        if run is not None:
            for attr in ("input_attachment_ids", "output_attachment_ids"):
                listed = getattr(run, attr)
                if listed and attachment_id in listed:
                    setattr(run, attr, [a for a in listed if a != attachment_id] or None)


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def exported_files(run: Run, workflow: Workflow) -> list[tuple[str, bytes, str]]:
    """(filename, content, content type) of each file a successful run of `workflow` exports."""
    inputs = run.input_values or {}
    if workflow.exports is not None:
        values = _Blank({k: v for k, v in inputs.items()}, run_id=run.id)
        return [
            (name.format_map(values), text.format_map(values).encode(), content_type_of(name))
            for name, text in workflow.exports
        ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run_id", "workflow", "input", "value"])
    for key, value in sorted(inputs.items()):
        writer.writerow([run.id, workflow.name or workflow.id, key, value])
    if not inputs:
        writer.writerow([run.id, workflow.name or workflow.id, "", ""])
    return [(f"export-{run.id[:8]}.csv", out.getvalue().encode(), "text/csv")]
