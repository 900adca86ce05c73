"""The README's Python examples run, in order, against a served emulator."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_has_examples() -> None:
    assert len(_python_blocks()) >= 3


def test_readme_examples_run_against_the_emulator(
    cyberdesk_emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = cyberdesk_emulator_factory(speed=100)
    monkeypatch.setenv("CYBERDESK_API_KEY", emulator.api_key)
    monkeypatch.setenv("CYBERDESK_BASE_URL", emulator.base_url)
    namespace: dict[str, Any] = {"__name__": "readme"}
    for block in _python_blocks():
        exec(compile(block, str(README), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "created" in printed and "scheduling" in printed
    assert "404 Not Found" in printed
    assert "bos-desk-01 connected boston" in printed
