"""A daemon's start and stop: a store out of reach at start is waited for; a daemon asked to stop answers the
webhooks it is receiving, with their news committed, before it stops (no request cut off, no traceback)."""

from __future__ import annotations

import asyncio
import base64
import json
import textwrap
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from daemon_support import ThreadedDaemon, eventually

from cyberdesk.emulator import Emulator, EmulatorServer
from cyberdesk.webhooks import sign
from cyberdesk_runner.config import load_config
from cyberdesk_runner.daemon import Daemon
from cyberdesk_runner.store.records import RunObservation
from cyberdesk_runner.tracking.news import News
from cyberdesk_runner.tracking.sink import ObservationSink

SECRET = "whsec_" + base64.b64encode(b"daemon-stop-test-secret-01234567").decode()


class _ToggledProxy:
    """A TCP port in front of PostgreSQL that hangs up on every connection until `open()`, then forwards."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.refused = 0
        self.is_open = False
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self.thread.start()
        assert self._ready.wait(10), "the proxy did not start"

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.is_open:
            self.refused += 1
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def open(self) -> None:
        self.is_open = True

    def close(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout=10)


@pytest.mark.postgres
def test_a_store_out_of_reach_at_start_is_waited_for(
    tmp_path: Path, pg_schema: Callable[[], str], pg_admin: sa.Engine
) -> None:
    url = sa.make_url(pg_schema())
    proxy = _ToggledProxy((url.host or "127.0.0.1", url.port or 5432))
    emulator = Emulator(speed=10, seed=1)
    server = EmulatorServer(emulator).start()
    through_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    (tmp_path / "jobs").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(f"""
        cyberdesk: {{api_key: {emulator.api_key}, base_url: "{server.base_url}"}}
        store: "{through_proxy}"
        jobs: jobs
        """)
    )
    schema = url.query["options"].removeprefix("-csearch_path=")
    try:
        running = ThreadedDaemon(Daemon(load_config(config)))
        eventually(lambda: proxy.refused >= 2, what="the daemon to try the store")
        assert running.thread.is_alive(), f"the daemon gave up: {running.errors}"
        proxy.open()

        def registered() -> bool:
            with pg_admin.connect() as conn:
                tables = sa.inspect(conn).get_table_names(schema=schema)
                if "daemon" not in tables:
                    return False
                query = sa.text(f'SELECT count(*) FROM "{schema}".daemon WHERE stopped_at IS NULL')
                return bool(conn.execute(query).scalar_one())

        eventually(registered, timeout=20, what="the daemon to start once the store answers")
        running.stop()
    finally:
        server.stop()
        proxy.close()


def test_a_webhook_under_way_at_stop_is_answered_before_the_daemon_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = Emulator(speed=10, seed=1)
    server = EmulatorServer(emulator).start()
    (tmp_path / "jobs").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(f"""
        cyberdesk: {{api_key: {emulator.api_key}, base_url: "{server.base_url}"}}
        store: sqlite:///store.sqlite
        jobs: jobs
        tracking:
          webhook: {{listen: "127.0.0.1:0", secret: "{SECRET}"}}
        """)
    )
    # The sink holds a webhook's news until the test lets it go: the stop is asked for meanwhile.
    entered, release = threading.Event(), threading.Event()
    flush = ObservationSink.flush

    async def held_flush(self: ObservationSink, batch: Sequence[News]) -> None:
        if any(isinstance(n, RunObservation) and n.source == "webhook" for n in batch):
            entered.set()
            await asyncio.to_thread(release.wait, 30)
        await flush(self, batch)

    monkeypatch.setattr(ObservationSink, "flush", held_flush)
    answers: list[httpx.Response | BaseException] = []
    try:
        running = ThreadedDaemon(Daemon(load_config(config)))
        daemon = running.daemon
        eventually(lambda: daemon.webhook_url is not None, what="the daemon's webhook endpoint")
        run_id = str(uuid.uuid4())
        body = json.dumps(
            {
                "event_type": "run_complete",
                "run": {
                    "id": run_id,
                    "workflow_id": str(uuid.uuid4()),
                    "machine_id": None,
                    "status": "success",
                    "created_at": "2026-11-30T14:00:00Z",
                },
            }
        ).encode()

        def deliver() -> None:
            try:
                answers.append(
                    httpx.post(str(daemon.webhook_url), content=body, headers=sign(body, SECRET), timeout=30)
                )
            except BaseException as exc:
                answers.append(exc)

        sender = threading.Thread(target=deliver)
        sender.start()
        eventually(entered.is_set, what="the webhook to reach the sink")
        running.request_stop()
        eventually(daemon._stop.is_set, what="the stop to begin")
        release.set()
        sender.join(timeout=30)
        running.join()  # within 30 s, raising nothing
    finally:
        release.set()
        server.stop()
    # Answered only once its news was committed (a cut-off sender would deliver it again later).
    [answer] = answers
    assert isinstance(answer, httpx.Response) and answer.status_code == 200, answer
