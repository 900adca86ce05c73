"""A multi-step attempt ends as a whole: the job's `timeout` covers the whole chain (its open steps are cancelled,
the attempt times out and is retried from the first step), and a user's `cancel` cancels every open step."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from cyberdesk_runner.cli import build_app

from .harness import Harness

FIXTURE: dict[str, Any] = {
    "pools": [{"name": "clinic"}],
    "machines": [{"name": f"desk-{i}", "pools": ["clinic"]} for i in range(1, 3)],
    "workflows": [
        {"name": "Sign in", "prompt": "Sign in for {patient_id}"},
        {"name": "Update", "prompt": "Update {patient_id}"},
        {"name": "Sign out", "prompt": "Sign out {patient_id}"},
    ],
}

# Each step takes 100 s: the chain needs 300 s, the job allows 2m.
JOB = """\
name: charts
target: {pool: clinic}
items: [{patient_id: p-1}]
timeout: 2m
retry: {max_attempts: 2, backoff: 10s}
steps:
  - workflow: Sign in
    alias: signin
  - workflow: Update
  - workflow: Sign out
"""


def _chain_calls(h: Harness) -> int:
    return sum(
        sum(codes.values()) for route, codes in h.stats()["requests"].items() if route.endswith("/chain")
    )


def _steps_of(h: Harness, attempt_id: str) -> list[dict[str, Any]]:
    return sorted(
        (s for s in h.rows("step_run") if s["attempt_id"] == attempt_id), key=lambda s: s["step_index"]
    )


async def test_the_job_timeout_covers_the_whole_chain_and_the_retry_starts_from_step_one(
    tmp_path: Path,
) -> None:
    async with Harness(
        tmp_path, {"charts": JOB}, fixture=FIXTURE, run_duration="100-100", failure_rate=0.0
    ) as h:
        await h.trigger("charts")
        await h.cycle()
        [attempt] = h.rows("attempt")
        await h.advance(110)  # step 1 ended at 100 s: each step is well within 2m, the chain is not
        await h.cycle()
        assert [s["status"] for s in _steps_of(h, attempt["id"])] == ["success", "running", "scheduling"]
        [attempt] = h.rows("attempt")
        assert attempt["status"] == "running"
        await h.advance(11)  # 121 s since the chain was created
        await h.cycle()
        [attempt] = h.rows("attempt")
        assert attempt["status"] == "timed_out"
        assert attempt["error"] == ["timed out after 2m; the run was cancelled"]
        first = _steps_of(h, attempt["id"])
        # The open steps were cancelled in Cyberdesk and recorded so; the finished one keeps its outcome.
        assert [s["status"] for s in first] == ["success", "cancelled", "cancelled"]
        # The running step was cancelled by the runner; Cyberdesk cancelled the one after it with the chain.
        assert first[1]["error"] == ["the chain timed out"]
        runs = {r.id: r for r in h.emulator_runs()}
        assert [runs[s["run_id"]].status for s in first] == ["success", "cancelled", "cancelled"]
        [item] = h.rows("item")
        assert item["status"] == "pending", "retried by the job's policy"

        await h.run_until_idle(step=30)
        attempts = sorted(h.rows("attempt"), key=lambda a: a["number"])
        assert [a["status"] for a in attempts] == ["timed_out", "timed_out"]
        [item] = h.rows("item")
        assert (item["status"], item["attempts"]) == ("failed", 2)
        # The retry is a new chain from the first step: one chain call per attempt, new runs for every step.
        assert _chain_calls(h) == 2
        second = _steps_of(h, attempts[1]["id"])
        assert [s["workflow"] for s in second] == ["Sign in", "Update", "Sign out"]
        assert not {s["run_id"] for s in second} & {s["run_id"] for s in first}
        assert attempts[1]["run_id"] == second[0]["run_id"]
        assert [s["status"] for s in second] == ["success", "cancelled", "cancelled"]
        assert not [r for r in h.emulator_runs() if r.status in ("scheduling", "running")]


async def test_a_user_cancelling_a_chain_cancels_its_open_steps_and_the_item(tmp_path: Path) -> None:
    async with Harness(
        tmp_path, {"charts": JOB}, fixture=FIXTURE, run_duration="100-100", failure_rate=0.0
    ) as h:
        await h.trigger("charts")
        await h.cycle()
        await h.advance(50)
        await h.cycle()
        [attempt] = h.rows("attempt")
        assert [s["status"] for s in _steps_of(h, attempt["id"])] == ["running", "scheduling", "scheduling"]

        config = tmp_path / "config.yaml"
        config.write_text(
            textwrap.dedent(f"""
                store: {h.store.url}
                jobs: jobs
                server: {{listen: null}}
            """)
        )
        result = CliRunner().invoke(
            build_app(), ["cancel", attempt["item_id"], "--reason", "wrong patient", "--config", str(config)]
        )
        assert result.exit_code == 0, result.output
        assert "1 run(s) in flight flagged" in result.output

        await h.cycle()  # the daemon's next round cancels the chain in Cyberdesk
        [attempt] = h.rows("attempt")
        assert attempt["status"] == "cancelled" and attempt["error"] == ["cancelled on request"]
        steps = _steps_of(h, attempt["id"])
        assert [s["status"] for s in steps] == ["cancelled", "cancelled", "cancelled"]
        assert {r.status for r in h.emulator_runs()} == {"cancelled"} and len(h.emulator_runs()) == 3

        await h.run_until_idle(step=30)
        [item] = h.rows("item")
        # A user's cancel is not retried: no second chain.
        assert (item["status"], item["attempts"]) == ("cancelled", 1)
        assert _chain_calls(h) == 1
        [fire] = h.rows("fire")
        assert fire["status"] == "cancelled"
