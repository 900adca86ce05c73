"""`cancel` and `retry` of a big fire stop between two chunks on SIGINT or SIGTERM (`cli.common.stop_signals`):
the signal only asks, a second Ctrl-C interrupts at once, and the handlers are put back after."""

from __future__ import annotations

import os
import signal

import pytest

from cyberdesk_runner.cli.common import stop_signals


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_asks_the_block_to_stop_and_names_its_exit_code(signum: int, code: int) -> None:
    before = signal.getsignal(signum)
    with stop_signals() as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signum)
        assert stop.requested() and stop.exit_code == code
    assert signal.getsignal(signum) is before


def test_a_second_ctrl_c_interrupts_at_once() -> None:
    with pytest.raises(KeyboardInterrupt), stop_signals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested()
        os.kill(os.getpid(), signal.SIGINT)
