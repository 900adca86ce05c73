"""The daemon caps glibc's malloc arenas at start, unless the operator's MALLOC_ARENA_MAX already did."""

from __future__ import annotations

import ctypes.util
import sys

import pytest

from cyberdesk_runner.memory import limit_malloc_arenas


def test_an_operator_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert limit_malloc_arenas() is False


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or "libc.so" not in (ctypes.util.find_library("c") or ""),
    reason="glibc only: elsewhere there is nothing to cap",
)
def test_glibc_takes_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas() is True
