"""`pip install .` (not editable) ships the migrations: build the wheel and look inside."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MIGRATIONS = "cyberdesk_runner/store/migrations/"


@pytest.mark.slow
def test_the_wheel_contains_every_migration(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for folder in ("sdk", "runner"):
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("cyberdesk_runner-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        MIGRATIONS + "__init__.py",
        MIGRATIONS + "env.py",
        MIGRATIONS + "script.py.mako",
        *(
            MIGRATIONS + "versions/" + p.name
            for p in (ROOT / "runner" / MIGRATIONS / "versions").glob("v*.py")
        ),
    }
    assert len(expected) >= 5
    assert expected <= names, sorted(expected - names)
