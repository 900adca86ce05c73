"""`trigger JOB --dry-run`: the plan a manual fire would have now (items, inputs with secrets masked, eligible
desktops, connected or not, or why nothing would run), with nothing recorded in the store or created in
Cyberdesk."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import SECRET, SECRET_ENV, Env
from typer.testing import CliRunner

from cyberdesk.emulator import Emulator, EmulatorServer
from cyberdesk_runner.cli import build_app
from cyberdesk_runner.cli.common import ExitCode

FLEET = {
    "pools": [{"name": "desks"}],
    "machines": [
        {"name": "desk-a1", "pools": ["desks"], "machine_parameters": {"site": "a"}},
        {
            "name": "desk-a2",
            "pools": ["desks"],
            "machine_parameters": {"site": "a"},
            "status": "disconnected",
        },
        {"name": "desk-b1", "pools": ["desks"], "machine_parameters": {"site": "b"}},
    ],
    "workflows": [{"name": "Submit claim", "prompt": "Submit {claim_id} with {$token}."}],
}

JOBS = {
    "claims": f"""
        name: claims
        workflow: Submit claim
        target: {{pool: desks, match: {{site: a}}}}
        inputs: {{portal: main}}
        items: [{{claim_id: C-1}}, {{claim_id: C-2}}]
        sensitive_inputs:
          token: {{env: {SECRET_ENV}}}
    """,
    "health": """
        name: health
        workflow: Submit claim
        target: {match: {site: a}}
        fan_out: machines
    """,
    "nowhere": """
        name: nowhere
        workflow: Submit claim
        target: {match: {site: z}}
    """,
    "asleep": """
        name: asleep
        workflow: Submit claim
        target: {machines: [desk-a2]}
    """,
    "misspelt": """
        name: misspelt
        workflow: Submit claims
        target: {pool: desks}
    """,
}


@pytest.fixture
def cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Env, Emulator]]:
    """A served emulator the config points at with its key, as it would at the real API; no store yet."""
    emulator = Emulator(fixture=FLEET, seed=1)
    server = EmulatorServer(emulator, host="127.0.0.1", port=0).start()
    (tmp_path / "jobs").mkdir()
    for name, text in JOBS.items():
        (tmp_path / "jobs" / f"{name}.yaml").write_text(textwrap.dedent(text))
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"store: {store_url}\njobs: jobs\n"
        f"cyberdesk: {{api_key: {emulator.api_key}, base_url: '{server.base_url}'}}\n"
    )
    monkeypatch.setenv(SECRET_ENV, SECRET)
    yield Env(config, store_url), emulator
    server.stop()


def _json(env: Env, *args: str, code: int = 0) -> dict[str, object]:
    result = env.cli("trigger", *args, "--dry-run", "--json")
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def test_the_plan_lists_items_inputs_and_eligible_desktops_and_records_nothing(
    cloud: tuple[Env, Emulator],
) -> None:
    env, emulator = cloud
    plan = _json(env, "claims", "--input", "portal=backup")
    assert plan["would_run"] is True and plan["why_not"] is None
    assert plan["workflow"]["id"] in {str(w.id) for w in emulator.world.workflows.values()}
    assert [item["inputs"] for item in plan["items"]] == [
        {"portal": "backup", "claim_id": "C-1", "token": "***"},
        {"portal": "backup", "claim_id": "C-2", "token": "***"},
    ]
    eligible = [(d["name"], d["connected"], d["params"]) for d in plan["items"][0]["desktops"]]
    assert eligible == [("desk-a1", True, {"site": "a"}), ("desk-a2", False, {"site": "a"})]

    text = env.cli("trigger", "claims", "--dry-run")
    assert text.exit_code == 0, text.output
    assert "desk-a2 (NOT connected, site=a)" in text.stdout and "2 item(s) would run." in text.stdout
    assert SECRET not in text.output + json.dumps(plan)
    # Nothing recorded, nothing created: the store was not even made, and Cyberdesk has no run.
    assert not Path(env.store_url.removeprefix("sqlite:///")).exists()
    assert emulator.world.runs == {}


def test_fan_out_over_machines_pins_each_item_and_leaves_out_disconnected_desktops(
    cloud: tuple[Env, Emulator],
) -> None:
    plan = _json(cloud[0], "health")
    assert [[d["name"] for d in item["desktops"]] for item in plan["items"]] == [["desk-a1"]]
    assert plan["desktops_left_out"] == ["desk-a2"]


@pytest.mark.parametrize(
    ("job", "why"),
    [
        ("nowhere", "job nowhere: its target selects no desktop"),
        (
            "asleep",
            "no desktop of the target (1 selected) is connected: the items would wait until one connects",
        ),
        ("misspelt", "no workflow is named 'Submit claims' in Cyberdesk; did you mean 'Submit claim'?"),
    ],
)
def test_why_nothing_would_run_exits_1(cloud: tuple[Env, Emulator], job: str, why: str) -> None:
    plan = _json(cloud[0], job, code=ExitCode.FAILED)
    assert (plan["would_run"], plan["why_not"]) == (False, why)
    text = cloud[0].cli("trigger", job, "--dry-run")
    assert f"Nothing would run: {why}" in " ".join(text.stdout.split())


def test_refuses_what_a_fire_refuses(cloud: tuple[Env, Emulator]) -> None:
    env = cloud[0]
    assert env.cli("trigger", "claims", "--dry-run", "--input", "token=x").exit_code == ExitCode.USAGE
    assert env.cli("trigger", "claims", "--dry-run", "--wait").exit_code == ExitCode.USAGE
    unknown = env.cli("trigger", "nope", "--dry-run")
    assert unknown.exit_code == ExitCode.NOT_FOUND and "no job named 'nope'" in unknown.stderr


def test_without_a_key_it_plans_against_the_embedded_emulator() -> None:
    repo = Path(__file__).resolve().parents[3]
    result = CliRunner().invoke(
        build_app(),
        ["trigger", "submit-claims", "--dry-run", "--json", "--config", str(repo / "config.example.yaml")],
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["api"] == "the embedded emulator" and len(plan["items"]) == 12
    assert {d["name"] for d in plan["items"][0]["desktops"]} == {
        *(f"bos-desk-0{i}" for i in range(1, 5)),
        *(f"nyc-desk-0{i}" for i in range(1, 5)),
    }


def test_a_refused_key_is_a_config_error(cloud: tuple[Env, Emulator]) -> None:
    env, emulator = cloud
    env.config.write_text(env.config.read_text().replace(emulator.api_key, "cd_not_this_one"))
    result = env.cli("trigger", "claims", "--dry-run")
    assert result.exit_code == ExitCode.CONFIG
    assert (
        "refused the API key (401 Unauthorized)" in result.stderr and "cd_not_this_one" not in result.output
    )
