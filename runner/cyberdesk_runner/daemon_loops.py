"""The daemon's loops and their health: each step run forever with backoff, each round and error remembered,
and /healthz (and `status`, and systemd's watchdog) answered from that.

A loop survives API and store outages: a failed round is logged and tried again with backoff (up to 30 s).
A loop that has not completed a round for `STALE_AFTER` seconds makes the daemon unhealthy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from cyberdesk_runner.api_access import API_KEY_REFUSED, is_key_refused, key_refused_message, status_of
from cyberdesk_runner.clock import Clock
from cyberdesk_runner.logs import get_logger
from cyberdesk_runner.runtime import Runtime

log = get_logger("cyberdesk_runner.daemon")

#: A loop that has not completed a round for this long makes /healthz answer 503.
STALE_AFTER = 120.0


class DaemonLoops:
    """Starts the daemon's loops as tasks and keeps what /healthz says about them. `runtime` is set once the
    daemon has made it (before any loop starts)."""

    def __init__(self, clock: Clock, stop: asyncio.Event) -> None:
        self.clock = clock
        self._stop = stop
        self.runtime: Runtime | None = None
        self._alive: dict[str, datetime] = {}
        self._last_errors: list[dict[str, str]] = []

    def loop(
        self, name: str, step: Callable[[], Awaitable[Any]], every: float, wake: asyncio.Event | None = None
    ) -> asyncio.Task[None]:
        async def forever() -> None:
            backoff = 1.0
            while not self._stop.is_set():
                try:
                    await step()
                    self._round_done(name)
                    backoff, delay = 1.0, every
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # one bad round must not kill the loop
                    self._note_error(name, exc)
                    delay, backoff = backoff, min(backoff * 2, 30.0)
                if wake is None:
                    await asyncio.sleep(delay)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=delay)
                wake.clear()

        return asyncio.create_task(forever(), name=name)

    def schedule_loop(self, runtime: Runtime) -> asyncio.Task[None]:
        """The schedule loop: ticks as soon as the next slot is due (at most a second apart)."""

        async def forever() -> None:
            while not self._stop.is_set():
                delay = 1.0
                try:
                    next_at = await asyncio.to_thread(runtime.schedule_tick)
                    self._round_done("schedule")
                    if next_at is not None:
                        delay = min(max((next_at - self.clock.now()).total_seconds(), 0.0), 1.0)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._note_error("schedule", exc)
                await asyncio.sleep(delay)

        return asyncio.create_task(forever(), name="schedule")

    def _round_done(self, loop: str) -> None:
        assert self.runtime is not None  # loops start once the runtime exists
        now = self.clock.now()
        self._alive[loop] = now
        self.runtime.metrics.loop_rounds.labels(loop).inc()
        self.runtime.metrics.loop_last_round.labels(loop).set(now.timestamp())

    def _note_error(self, where: str, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if is_key_refused(exc):
            message = key_refused_message(
                str(self.runtime.client.base_url) if self.runtime else "", status_of(exc)
            )
            log.warning(
                "api_key_refused",
                loop=where,
                error=message,
                effect="will keep trying, in case the key is being rotated",
            )
        else:
            log.error("loop_error", loop=where, error=message)
        self._last_errors = [
            *self._last_errors[-9:],
            {"loop": where, "error": message, "at": self.clock.now().isoformat()},
        ]

    def health(self, daemon_id: str, webhook_url: str | None) -> tuple[bool, dict[str, Any]]:
        """(healthy, details) for /healthz and the daemon's heartbeat: unhealthy once a loop is stale or the
        daemon is stopping."""
        now = self.clock.now()
        stale = [name for name, at in self._alive.items() if (now - at).total_seconds() > STALE_AFTER]
        runtime = self.runtime
        last_poll = runtime.poller.last_poll_at if runtime else None
        details = {
            "daemon": daemon_id,
            "loops": {name: at.isoformat() for name, at in self._alive.items()},
            "stale_loops": stale,
            "api_ok": runtime.api_ok if runtime else None,
            "api": _api_state(runtime),
            "webhook_url": webhook_url,
            "last_poll_at": last_poll.isoformat() if last_poll else None,
            "last_errors": self._last_errors,
            "job_file_errors": (
                [str(e) for e in [*runtime.catalog.errors, *runtime.reference_errors]] if runtime else []
            ),
        }
        return (not stale and not self._stop.is_set()), details


def _api_state(runtime: Runtime | None) -> str | None:
    """How the API answered lately, in words for /healthz and `status`; None before the first answer."""
    if runtime is None or runtime.api_ok is None:
        return None
    if runtime.api_ok:
        return "ok"
    return API_KEY_REFUSED if runtime.api_key_refused else "unreachable"
