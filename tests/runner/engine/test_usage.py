"""What the work cost, end to end against the emulator: each attempt keeps its run's usage, the sums match what
the API billed, /metrics counts by job, and a budget stops a fire from creating more runs."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest

from .harness import Harness

ITEMS = "\n".join(f'      - {{claim_id: C-{n}, patient_name: P{n}, amount: "{n}"}}' for n in range(6))
CLAIMS = f"""
    name: claims
    workflow: Submit insurance claim
    target: {{pool: claims-team}}
    concurrency: 2
    items:
{ITEMS}
"""


async def test_usage_is_kept_per_attempt_summed_and_counted_by_job(tmp_path: Path) -> None:
    async with Harness(tmp_path, {"claims": CLAIMS}) as h:
        fire_id = await h.trigger("claims")
        await h.run_until_idle()
        runs = h.emulator_runs()
        assert len(runs) == 6
        billed = {str(r.id): r.usage_metadata for r in runs}
        attempts = h.rows("attempt")
        assert {a["run_id"]: a["usage"] for a in attempts} == billed
        tokens = sum(u["total_tokens"] for u in billed.values())
        seconds = sum(u["billed_seconds"] for u in billed.values())
        assert tokens > 0 and seconds > 0
        [usage] = h.store.usage.by_fire([fire_id]).values()
        assert (usage.runs, usage.tokens, usage.billed_seconds) == (6, tokens, seconds)
        metrics = generate_latest(h.runtime.metrics.registry).decode()
        assert f'cyberdesk_runner_tokens_total{{job="claims"}} {float(tokens)}' in metrics
        assert f'cyberdesk_runner_billed_seconds_total{{job="claims"}} {float(seconds)}' in metrics


async def test_a_fire_over_its_budget_creates_no_more_runs(tmp_path: Path) -> None:
    # Each run of three inputs uses at least 7,200 tokens in the emulator: the first two pass 10,000.
    job = CLAIMS + "    budget: {tokens_per_fire: 10000}\n"
    async with Harness(tmp_path, {"claims": job}) as h:
        fire_id = await h.trigger("claims")
        await h.run_until_idle()
        assert len(h.emulator_runs()) == 2
        [fire] = [f for f in h.rows("fire") if f["id"] == fire_id]
        assert fire["status"] == "failed" and "over the job's budget of 10,000 tokens" in fire["error"]
        statuses = sorted(i["status"] for i in h.rows("item"))
        assert statuses == ["failed"] * 4 + ["succeeded"] * 2
        kinds = [e["kind"] for e in h.rows("event")]
        assert kinds.count("fire_over_budget") == 1


async def test_a_multi_step_attempt_costs_what_its_steps_cost(tmp_path: Path) -> None:
    fixture = {
        "pools": [{"name": "clinic"}],
        "machines": [{"name": "desk-1", "pools": ["clinic"]}],
        "workflows": [
            {"name": "Sign in", "prompt": "Sign in {p}"},
            {"name": "Update", "prompt": "Update {p}"},
        ],
    }
    job = """
        name: chart
        target: {pool: clinic}
        items: [{p: p-1}]
        steps:
          - workflow: Sign in
          - workflow: Update
    """
    async with Harness(tmp_path, {"chart": job}, fixture=fixture) as h:
        fire_id = await h.trigger("chart")
        await h.run_until_idle()
        runs = h.emulator_runs()
        assert len(runs) == 2
        tokens = sum(r.usage_metadata["total_tokens"] for r in runs)
        seconds = sum(r.usage_metadata["billed_seconds"] for r in runs)
        [usage] = h.store.usage.by_fire([fire_id]).values()
        assert (usage.runs, usage.tokens, usage.billed_seconds) == (1, tokens, seconds)
        [attempt] = h.rows("attempt")
        assert attempt["usage"]["steps"] == [r.usage_metadata for r in runs]
