"""Fan-out end to end against the emulator: which desktops get which runs, with which parameters."""

from __future__ import annotations

from pathlib import Path

from .harness import Harness

CLAIMS = """
    name: claims
    workflow: Submit insurance claim
    target: {pool: claims-team}
    concurrency: 8
    items:
      - {claim_id: C-1, patient_name: Ann, amount: "10"}
      - {claim_id: C-2, patient_name: Bob, amount: "20"}
      - {claim_id: C-3, patient_name: Cid, amount: "30"}
      - {claim_id: C-4, patient_name: Dee, amount: "40"}
      - {claim_id: C-5, patient_name: Eve, amount: "50"}
      - {claim_id: C-6, patient_name: Fay, amount: "60"}
"""

HEALTH = """
    name: health
    workflow: Nightly desktop health check
    target: {match: {site: boston}}
    fan_out: machines
"""


async def test_fan_out_items_spreads_items_over_the_pool_one_per_desktop(tmp_path: Path) -> None:
    async with Harness(tmp_path, {"claims": CLAIMS}) as h:
        await h.trigger("claims")
        await h.cycle()
        runs = h.emulator_runs()
        pool = h.emulator.pool("claims-team")
        pool_machines = {m.id for m in h.emulator.world.machines.values() if pool.id in m.pool_ids}
        assert len(runs) == 6
        assert {r.machine_id for r in runs} <= pool_machines
        assert len({r.machine_id for r in runs}) == 6, "six items, eight free desktops: one run per desktop"
        await h.run_until_idle()
        assert {r.status for r in h.emulator_runs()} == {"success"}
        items = h.rows("item")
        assert sorted(i["status"] for i in items) == ["succeeded"] * 6
        assert h.stats()["duplicates"] == [] or not h.stats()["duplicates"]


async def test_fan_out_machines_runs_once_on_every_matching_desktop_with_its_own_parameters(
    tmp_path: Path,
) -> None:
    async with Harness(tmp_path, {"health": HEALTH}) as h:
        await h.trigger("health")
        await h.run_until_idle()
        runs = h.emulator_runs()
        boston = {m.id: m for m in h.emulator.world.machines.values() if m.parameters.get("site") == "boston"}
        assert sorted(r.machine_id for r in runs) == sorted(boston)
        for run in runs:
            machine = boston[run.machine_id]
            prompt = run.output_data["resolved_prompt"]
            # The run's prompt carries that desktop's own parameters, not another's.
            assert f"on desktop {machine.name} at site boston" in prompt
        attempts = h.rows("attempt")
        assert sorted(a["machine_name"] for a in attempts) == sorted(m.name for m in boston.values())


async def test_items_never_share_a_desktop_and_respect_job_concurrency(tmp_path: Path) -> None:
    job = CLAIMS.replace("concurrency: 8", "concurrency: 2")
    async with Harness(tmp_path, {"claims": job}) as h:
        await h.trigger("claims")
        await h.cycle()
        assert len(h.emulator_runs()) == 2, "concurrency 2: two runs in flight, four items pending"
        await h.run_until_idle()
        assert len(h.emulator_runs()) == 6
        assert h.emulator.overlaps() == []
        # At no time were more than two of the job's runs active.
        events = sorted(
            [(r.started_at, 1) for r in h.emulator_runs()] + [(r.ended_at, -1) for r in h.emulator_runs()],
            key=lambda e: (e[0], e[1]),
        )
        active = peak = 0
        for _, delta in events:
            active += delta
            peak = max(peak, active)
        assert peak <= 2
