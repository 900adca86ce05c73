"""The daemon reports a job's unknown workflow, pool or desktop names as `validate` does (file:line:col, did you
mean), once per problem, when it loads the job and whenever the API's view changes; and a refused API key is said
to be one, not an outage, and fails no run."""

from __future__ import annotations

from pathlib import Path

import httpx
from structlog.testing import capture_logs

from cyberdesk import CyberdeskClient, RetryConfig
from cyberdesk.emulator import create_app

from .harness import Harness

FLEET = {
    "pools": [{"name": "claims-team"}],
    "machines": [
        {"name": "bos-desk-01", "pools": ["claims-team"]},
        {"name": "bos-desk-02", "pools": ["claims-team"]},
    ],
    "workflows": [{"name": "Submit insurance claim", "prompt": "Submit {claim_id}."}],
}

GOOD = """
    name: good
    workflow: Submit insurance claim
    target: {pool: claims-team}
"""

MISSPELT = """
    name: misspelt
    workflow: Submit insurance claims
    target:
      pool: claim-team
      machines: [bos-desk-01, bos-dsk-02]
"""


async def test_unknown_names_are_reported_with_their_place_once(tmp_path: Path) -> None:
    harness = Harness(tmp_path, {"good": GOOD, "misspelt": MISSPELT}, fixture=FLEET)
    with capture_logs() as logs:
        async with harness:
            await harness.runtime.refresh_fleet()  # the same view again: nothing new to say
            reported = [e["error"] for e in logs if e["event"] == "job_reference_error"]
    misspelt = tmp_path / "jobs" / "misspelt.yaml"
    assert reported == [str(e) for e in harness.runtime.reference_errors]
    assert [(e.file, e.line, e.column, e.field_path) for e in harness.runtime.reference_errors] == [
        (misspelt, 3, 11, "workflow"),
        (misspelt, 5, 9, "target.pool"),
        (misspelt, 6, 27, "target.machines[1]"),
    ]
    assert reported[0].endswith(
        "workflow: no workflow is named 'Submit insurance claims' in Cyberdesk; "
        "did you mean 'Submit insurance claim'?"
    )
    assert "did you mean 'claims-team'?" in reported[1]
    assert "did you mean 'bos-desk-02'" in reported[2]


async def test_a_fixed_job_file_clears_its_problems(tmp_path: Path) -> None:
    harness = Harness(tmp_path, {"misspelt": MISSPELT}, fixture=FLEET)
    async with harness:
        assert len(harness.runtime.reference_errors) == 3
        fixed = (
            MISSPELT.replace("claims\n", "claim\n")
            .replace("claim-team", "claims-team")
            .replace("dsk", "desk")
        )
        (tmp_path / "jobs" / "misspelt.yaml").write_text(fixed)
        with capture_logs() as logs:
            await harness.runtime.reload_jobs()
        assert harness.runtime.reference_errors == []
        assert not [e for e in logs if e["event"] == "job_reference_error"]


async def test_a_refused_key_is_told_apart_from_an_outage(tmp_path: Path) -> None:
    harness = Harness(tmp_path, {"good": GOOD}, fixture=FLEET)
    harness.client = CyberdeskClient(
        "not-the-emulators-key",
        base_url="http://emulator.test",
        async_transport=httpx.ASGITransport(app=create_app(harness.emulator)),
        retry=RetryConfig(max_retries=0),
    )
    harness.runtime = harness.new_runtime()
    with capture_logs() as logs:
        async with harness:
            runtime = harness.runtime
            assert (runtime.api_ok, runtime.api_key_refused, runtime.fleet_loaded) == (False, True, False)
    [event] = [e for e in logs if e["event"].startswith("api_")]
    assert event["event"] == "api_key_refused_at_start"
    assert "http://emulator.test refused the API key (401 Unauthorized)" in event["error"]
    assert "not-the-emulators-key" not in str(logs)


class _Refusing(httpx.AsyncBaseTransport):
    """The API, answering 401 to everything while `refuse` is set (a key being rotated)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.refuse = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.refuse:
            return httpx.Response(401, json={"detail": "Invalid or missing API key"})
        return await self.inner.handle_async_request(request)


async def test_a_create_refused_for_the_key_is_repeated_later_not_failed(tmp_path: Path) -> None:
    harness = Harness(tmp_path, {"good": GOOD}, fixture=FLEET, run_duration="5-5")
    transport = _Refusing(httpx.ASGITransport(app=create_app(harness.emulator)))
    harness.client = CyberdeskClient(
        harness.emulator.api_key,
        base_url="http://emulator.test",
        async_transport=transport,
        retry=RetryConfig(max_retries=0),
    )
    harness.runtime = harness.new_runtime()
    async with harness:
        fire_id = await harness.trigger("good")
        transport.refuse = True
        await harness.cycle()
        [attempt] = harness.rows("attempt")
        assert attempt["status"] == "creating"  # not rejected: the key, not the run, was refused
        transport.refuse = False
        await harness.run_until_idle()
    [fire] = [f for f in harness.store.fires.of_job("good") if f.id == fire_id]
    assert fire.status == "succeeded"
    assert len(harness.emulator.world.runs) == 1
