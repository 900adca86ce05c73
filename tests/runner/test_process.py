"""Process-wide tuning of the daemon process: malloc arenas (unless the operator set MALLOC_ARENA_MAX) and the
garbage collector; applied only when `cyberdesk-runner` runs as its own process."""

from __future__ import annotations

import ctypes.util
import gc
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cyberdesk_runner.cli import build_app
from cyberdesk_runner.process import (
    YOUNG_THRESHOLD,
    fix_mmap_threshold,
    limit_malloc_arenas,
    quiet_garbage_collector,
)

_GLIBC = pytest.mark.skipif(
    not sys.platform.startswith("linux") or "libc.so" not in (ctypes.util.find_library("c") or ""),
    reason="glibc only: elsewhere there is nothing to tune",
)


def test_an_operator_setting_of_malloc_arenas_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert limit_malloc_arenas() is False


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MALLOC_MMAP_THRESHOLD_", "65536"), ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")],
)
def test_an_operator_setting_of_the_mmap_threshold_wins(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    assert fix_mmap_threshold() is False


@_GLIBC
def test_glibc_takes_the_arena_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas() is True


@_GLIBC
def test_glibc_takes_the_fixed_mmap_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.check=0")  # another tunable is no setting of this one
    assert fix_mmap_threshold() is True


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_the_collector_leaves_what_exists_alone_and_still_collects_new_cycles(restored_gc: None) -> None:
    quiet_garbage_collector()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2  # a cycle made after the freeze is still garbage


def test_the_collector_frees_the_garbage_the_console_script_froze_after_its_imports(
    restored_gc: None,
) -> None:
    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    gc.freeze()  # as `cli.main` does once the command's modules are loaded
    quiet_garbage_collector()
    assert gone() is None


def _empty_config(tmp_path: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(f"store: sqlite:///{tmp_path / 'store.sqlite'}\njobs: jobs\nserver: {{listen: null}}\n")
    (tmp_path / "jobs").mkdir()
    return config


def test_a_program_calling_the_cli_in_process_keeps_its_collector(tmp_path: Path) -> None:
    threshold = gc.get_threshold()
    result = CliRunner().invoke(
        build_app(), ["run", "--until-idle", "--config", str(_empty_config(tmp_path))]
    )
    assert result.exit_code == 0, result.output
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == threshold


def test_the_console_script_tunes_its_process(tmp_path: Path) -> None:
    # The daemon itself is not started: its event loop's runner reports whether the process was tuned by then,
    # and whether the loop would be uvloop's (installed with the lock on this platform).
    program = (
        "import asyncio, gc, sys, uvloop\n"
        "from cyberdesk_runner.cli import main\n"
        "class Runner:\n"
        "    def __init__(self, loop_factory=None):\n"
        "        self.uvloop = loop_factory is uvloop.new_event_loop\n"
        "    def __enter__(self):\n"
        "        return self\n"
        "    def __exit__(self, *exc):\n"
        "        return None\n"
        "    def run(self, coro):\n"
        "        coro.close()\n"
        "        sys.exit(7 if not gc.get_freeze_count() else 8 if not self.uvloop else 0)\n"
        "asyncio.Runner = Runner\n"
        "sys.argv = ['cyberdesk-runner', 'run', '--config', sys.argv[1]]\n"
        "main()\n"
    )
    config = _empty_config(tmp_path)
    done = subprocess.run([sys.executable, "-c", program, str(config)], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
