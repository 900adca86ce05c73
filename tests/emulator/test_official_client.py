"""The official `cyberdesk` client (from PyPI) works against the emulator with only base_url and api_key set."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

OFFICIAL = "cyberdesk==2.2.69"
DRIVER = Path(__file__).parent / "official" / "drive_official_client.py"


@pytest.fixture(scope="module")
def official_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official package, unpacked (not installed: our own `cyberdesk` stays the installed one)."""
    folder = tmp_path_factory.mktemp("official")
    download = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder), OFFICIAL],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if download.returncode != 0:
        pytest.skip(f"the package registry did not serve {OFFICIAL}: {download.stderr.strip()[-300:]}")
    [wheel] = folder.glob("*.whl")
    unpacked = folder / "unpacked"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    return unpacked


@pytest.mark.slow
def test_the_official_client_works_against_the_emulator(
    official_wheel: Path, cyberdesk_emulator_factory: Any
) -> None:
    emulator = cyberdesk_emulator_factory(speed=1000)
    bootstrap = (
        f"import sys; sys.path.insert(0, {str(official_wheel)!r}); "
        f"sys.argv = ['drive', {emulator.base_url!r}, {emulator.api_key!r}]; "
        f"exec(compile(open({str(DRIVER)!r}).read(), 'drive_official_client.py', 'exec'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", bootstrap], capture_output=True, text=True, timeout=120, cwd=official_wheel
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert (
        "openapi_client"
        in subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path.insert(0, {str(official_wheel)!r}); import cyberdesk; "
                "import openapi_client; print(cyberdesk.__file__, openapi_client.__name__)",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    ), "the subprocess must import the official package, not ours"
    assert "checks passed" in result.stdout
