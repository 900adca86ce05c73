"""Wake idle daemons when work appears: PostgreSQL LISTEN/NOTIFY, with the daemon's polling as the fallback.

The store sends `NOTIFY cyberdesk_runner_work` (through `pg_notify`, delivered when the transaction commits)
from every transaction that makes work due: a fire with items, a planned or requested fire, an item pending
again for a retry, a desktop freed by a finished run, a cancel request. `listen_for_work` turns those into
calls of `on_notify` (the daemon's wake-up of its dispatcher). Notifications are hints: a lost one (the
listener was reconnecting) costs at most one polling interval, and a reconnect calls `on_notify` once, since
it may have missed some.

The channel is per database, not per schema: stores in several schemas of one database wake each other's
daemons needlessly, which is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from cyberdesk_runner.store.engine import libpq_conninfo

if TYPE_CHECKING:
    import psycopg

__all__ = ["CHANNEL", "listen_for_work"]

CHANNEL = "cyberdesk_runner_work"
#: Seconds between checks of `stop` (and of the connection) while no notification arrives.
_IDLE_CHECK = 0.25
#: Seconds between round trips that prove an idle LISTEN connection is still alive.
_KEEPALIVE = 30.0
_BACKOFF_FIRST = 0.5
_BACKOFF_MAX = 30.0


async def listen_for_work(url: str, on_notify: Callable[[], None], stop: asyncio.Event) -> None:
    """Call `on_notify` whenever another transaction reports new work, until `stop` is set.

    `url` is the store's SQLAlchemy URL. On SQLite (one daemon per store) this returns at once. Connection
    failures are logged and retried with backoff; they never end the listener before `stop`.
    """
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    if "application_name" not in parsed.query:
        # Named, so that the listener is told apart in pg_stat_activity.
        parsed = parsed.update_query_dict({"application_name": "cyberdesk-runner-listen"})
    conninfo = libpq_conninfo(parsed.render_as_string(hide_password=False))
    import psycopg  # only PostgreSQL stores need it

    # structlog is the daemon's: the store module imports this one for CHANNEL, and the CLI's commands never log.
    from cyberdesk_runner.logs import get_logger

    log = get_logger("cyberdesk_runner.store.notify")

    backoff = _BACKOFF_FIRST
    while not stop.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                log.info("listening_for_work", channel=CHANNEL)
                backoff = _BACKOFF_FIRST
                on_notify()  # whatever was notified while we were not listening
                await _relay(conn, on_notify, stop)
        except (psycopg.Error, OSError) as exc:
            log.warning("listen_failed", error=f"{type(exc).__name__}: {exc}", retry_in=backoff)
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=backoff)
        backoff = min(backoff * 2, _BACKOFF_MAX)


async def _relay(
    conn: psycopg.AsyncConnection[object], on_notify: Callable[[], None], stop: asyncio.Event
) -> None:
    idle = 0.0
    while not stop.is_set():
        got = 0
        # Each pass ends after _IDLE_CHECK seconds (with or without news), so `stop` is seen promptly.
        async for _ in conn.notifies(timeout=_IDLE_CHECK):
            got += 1
            on_notify()
            if stop.is_set():
                return
        idle = 0.0 if got else idle + _IDLE_CHECK
        if idle >= _KEEPALIVE:
            # A silent network failure leaves LISTEN waiting forever; a query notices it.
            await conn.execute("SELECT 1")
            idle = 0.0
