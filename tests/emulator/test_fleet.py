"""The demo fleet and YAML fixtures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cyberdesk.emulator import Emulator, FixtureError, load_fixture


def test_demo_fleet_is_exactly_as_documented() -> None:
    em = Emulator(seed=1)
    names = sorted(m.name or "" for m in em.world.machines.values())
    assert names == [f"{site}-desk-0{i}" for site in ("bos", "chi", "nyc") for i in range(1, 5)]
    sites = {"bos": ("boston", "us-east"), "nyc": ("new-york", "us-east"), "chi": ("chicago", "us-central")}
    for machine in em.world.machines.values():
        assert machine.name is not None and machine.parameters is not None
        short, number = machine.name.split("-desk-")
        site, region = sites[short]
        assert machine.parameters == {
            "site": site,
            "desktop_name": machine.name,
            "username": f"svc_{short}_{number}",
            "portal_url": f"https://claims.{site}.example.com",
            "claims_app": "ClaimsPro",
            "ehr_app": "EpicLite",
            "erp_app": "LedgerOne",
            "region": region,
        }
        assert set(machine.sensitive or {}) == {"password"}
        assert machine.status == "connected"
    members = {
        p.name: sorted(em.world.machines[m].name or "" for m in p.machine_ids)
        for p in em.world.pools.values()
    }
    assert members == {
        "claims-team": [f"{s}-desk-0{i}" for s in ("bos", "nyc") for i in range(1, 5)],
        "billing": [f"chi-desk-0{i}" for i in range(1, 5)],
    }
    prompts = {w.name: (w.main_prompt, w.is_webhooks_enabled) for w in em.world.workflows.values()}
    assert prompts == {
        "Submit insurance claim": (
            "Open {claims_app} at {portal_url}, sign in as {username} with password {$password}, and submit claim "
            "{claim_id} for patient {patient_name} (amount {amount}).",
            True,
        ),
        "Update patient record": (
            "In {ehr_app}, sign in as {username} with password {$password}, open patient {patient_id} and set the "
            "phone number to {phone}.",
            True,
        ),
        "Reconcile invoices": (
            "Open {erp_app}, sign in as {username}, and reconcile the invoices of vendor {vendor} for {month}.",
            True,
        ),
        "Nightly desktop health check": (
            "Check that {claims_app} starts on desktop {desktop_name} at site {site} and report its version.",
            False,
        ),
        "Extract pending claims": (
            "Open {claims_app} at {portal_url}, sign in as {username} with password {$password}, and list the "
            "claims waiting for submission.",
            True,
        ),
        "Sign in to EHR": (
            "In {ehr_app}, sign in as {username} with password {$password} and open the chart of patient "
            "{patient_id}.",
            True,
        ),
    }
    schemas = {w.name for w in em.world.workflows.values() if w.output_schema is not None}
    assert schemas == {"Extract pending claims", "Sign in to EHR"}


def test_same_seed_same_ids() -> None:
    assert sorted(Emulator(seed=5).world.machines) == sorted(Emulator(seed=5).world.machines)
    assert sorted(Emulator(seed=5).world.machines) != sorted(Emulator(seed=6).world.machines)


def test_yaml_fixture_file(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        """
pools:
  - name: east
    pool_parameters: {region: east}
machines:
  - name: d1
    pools: [east, auto-created]
    machine_parameters: {site: a}
    sensitive_parameters: {password: p1}
    status: disconnected
    reconnect_at: 30
workflows:
  - name: w
    prompt: "Do {site}"
    webhooks: false
    run_duration: 10-20
    failure_rate: 0.5
    fail_when:
      - {input: site, equals: a, status: error, error: "Site a is down"}
""",
        encoding="utf-8",
    )
    em = Emulator(fixture=path, seed=1)
    machine = em.machine("d1")
    assert machine.status == "disconnected"
    assert {em.world.pools[p].name for p in machine.pool_ids} == {"east", "auto-created"}
    workflow = em.workflow("w")
    assert workflow.is_webhooks_enabled is False and workflow.failure_rate == 0.5
    assert workflow.run_duration is not None and (workflow.run_duration.low, workflow.run_duration.high) == (
        10,
        20,
    )
    assert workflow.fail_when[0].message() == "Site a is down"
    assert em.simulation.next_due() == pytest.approx(em.simulation.epoch + 30)


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ({"machines": [{"nam": "x"}]}, "machines[0]"),
        ({"desktops": []}, "unknown top-level keys"),
        ({"workflows": [{"name": "w"}]}, "`prompt`"),
        ({"workflows": [{"name": "w", "prompt": "p", "run_duration": "slow"}]}, "MIN-MAX"),
        (
            {
                "workflows": [
                    {"name": "w", "prompt": "p", "fail_when": [{"input": "a", "equals": 1, "status": "ok"}]}
                ]
            },
            "task_failed or error",
        ),
        ({"machines": [{"name": "m", "disconnect_at": -1}]}, "disconnect_at"),
        (
            {"workflows": [{"name": "w", "prompt": "p", "output_schema": "{not json"}]},
            "workflows[0]: `output_schema`",
        ),
        ({"workflows": [{"name": "w", "prompt": "p", "output_schema": [1]}]}, "JSON Schema object"),
    ],
)
def test_fixture_errors_say_where(fixture: dict[str, object], message: str) -> None:
    with pytest.raises(FixtureError, match=re.escape(message)):
        load_fixture(fixture)


def test_missing_fixture_file(tmp_path: Path) -> None:
    with pytest.raises(FixtureError):
        load_fixture(tmp_path / "nope.yaml")


def test_empty_fixture_is_an_empty_cloud() -> None:
    em = Emulator(fixture={})
    assert not em.world.machines and not em.world.workflows
