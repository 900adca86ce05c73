"""Secrets (sensitive inputs, desktop passwords, webhook secret, API key) never reach logs or the store."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cyberdesk_runner.logs import configure

from .fleets import three_desks
from .harness import WEBHOOK_SECRET, Harness

JOB = """
    name: secret-job
    workflow: Flaky
    target: {match: {site: boston}}
    items: [{task: a}, {task: b}]
    sensitive_inputs:
      portal_token: {env: PORTAL_TOKEN}
      signing_key: {file: key.txt}
    retry: {max_attempts: 2, backoff: 5s}
"""

TOKEN = "tok-Very-Secret-7781"
FILE_KEY = "filekey-Also-Secret-4410"


async def test_no_secret_appears_in_logs_or_in_a_dump_of_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTAL_TOKEN", TOKEN)
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "key.txt").write_text(FILE_KEY + "\n")
    logs = io.StringIO()
    configure("json", "debug", stream=logs)
    fleet = three_desks(
        run_duration="30-30",
        fail_when=[{"input": "task", "equals": "a", "status": "error", "error": "failed once"}],
    )
    try:
        async with Harness(tmp_path, {"secret-job": JOB}, fixture=fleet) as h:
            await h.trigger("secret-job")
            await h.run_until_idle(step=15)
            runs = h.emulator_runs()
            # The values did reach Cyberdesk (as vaulted sensitive inputs)...
            assert all(set(r.sensitive_aliases or {}) == {"portal_token", "signing_key"} for r in runs)
            dump = "\n".join(
                repr(row)
                for table in ("job", "fire", "item", "attempt", "event", "daemon")
                for row in h.rows(table)
            )
            secrets = [
                TOKEN,
                FILE_KEY,
                WEBHOOK_SECRET,
                h.emulator.api_key,
                *(f"desk-{n}-Pa55word" for n in (1, 2, 3)),
            ]
    finally:
        configure("console", "info")
    text = logs.getvalue()
    assert "attempt_error" in text and "run_created" in text, "the logs did record the work"
    for secret in secrets:
        assert secret not in text
        assert secret not in dump
