"""The official `cyberdesk` client (from PyPI) works against the emulator with only base_url and api_key set."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from cyberdesk.emulator import Emulator, create_app

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


def test_the_emulator_serves_every_operation_of_the_files_tags_models_and_usage_apis(
    official_wheel: Path,
) -> None:
    """Read from the official client's generated operations, so a route renamed on either side is caught."""
    api = official_wheel / "openapi_client" / "cyberdesk_cloud_client" / "api"
    operations: dict[str, set[tuple[str, str]]] = {}
    for module in api.glob("*/*.py"):
        found = re.search(r'"method": "(\w+)",\s*"url": "([^"]+)"', module.read_text())
        if found:
            template = re.sub(r"\{\w+\}", "{}", found.group(2))
            operations.setdefault(module.parent.name, set()).add((found.group(1).upper(), template))
    app = create_app(Emulator())
    served = {
        (method, re.sub(r"\{[\w:]+\}", "{}", route.path))
        for route in app._routes
        for method in getattr(route, "methods", ())
    }
    for group in ("workflow_tags", "workflow_tag_groups", "model_configurations", "run_attachments"):
        assert operations[group] <= served, (group, operations[group] - served)
    # The workflows group includes merge, the prompt images and the tags of a workflow.
    assert operations["workflows"] <= served, operations["workflows"] - served
    assert ("GET", "/v1/usage/aggregate") in served
    assert {("GET", "/v1/runs/{}/image/signed-url"), ("POST", "/v1/runs/{}/generate-trajectory")} <= served
    assert len(set().union(*operations.values())) == 142
    assert len(served & set().union(*operations.values())) >= 83
