"""Helpers for job-file tests: write a file into a temporary `jobs/` folder and collect its errors."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from spec_helpers import ErrorTuple, as_tuples

from cyberdesk_runner.spec import JobFileError, SpecError, load_job_file


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "jobs"
    folder.mkdir()
    return folder


@pytest.fixture
def write(jobs_dir: Path) -> Callable[..., Path]:
    """write("name.yaml", text) -> path; the text is dedented, so tests can indent it."""

    def write(name: str, text: str | bytes) -> Path:
        path = jobs_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def errors_of(write: Callable[..., Path]) -> Callable[[str], list[ErrorTuple]]:
    """errors_of(text) -> the errors of a job file `job.yaml` with that text (which must not load)."""

    def errors_of(text: str) -> list[ErrorTuple]:
        path = write("job.yaml", text)
        with pytest.raises(JobFileError) as info:
            load_job_file(path)
        return as_tuples(info.value.errors)

    return errors_of


@pytest.fixture(name="as_tuples")
def as_tuples_fixture() -> Callable[[list[SpecError]], list[ErrorTuple]]:
    return as_tuples
