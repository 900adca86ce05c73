"""Exit codes (unknown job or id: 3; bad usage: 2; no store or a bad emulator fixture: 4) and masking of sensitive
inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import SECRET, Env
from typer.testing import CliRunner

from cyberdesk_runner.cli import build_app
from cyberdesk_runner.cli.common import ExitCode


@pytest.mark.parametrize(
    "args",
    [
        ["fires", "nope"],
        ["runs", "--job", "nope"],
        ["runs", "--fire", "fire_0000000000000000"],
        ["show", "fire_0000000000000000"],
        ["show", "item_0000000000000000"],
        ["show", "att_0000000000000000"],
        ["show", "00000000-0000-4000-8000-000000000000"],
        ["show", "something-else"],
        ["watch", "nope", "--once"],
        ["pause", "nope"],
        ["resume", "nope"],
        ["cancel", "fire_0000000000000000"],
        ["retry", "item_0000000000000000"],
        ["trigger", "nope"],
    ],
)
def test_unknown_jobs_and_ids_exit_3(history: Env, args: list[str]) -> None:
    result = history.cli(*args)
    assert result.exit_code == ExitCode.NOT_FOUND, result.output
    message = result.stderr.splitlines()[-1]
    assert message.startswith("error: ")
    assert (
        "no job named 'nope' (known: claims, health, records)" in message or "nothing has the id" in message
    )


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "--status", "bogus"],
        ["fires", "--since", "yesterday"],
        ["fires", "--limit", "0"],
        ["trigger", "claims", "--wait", "--timeout", "soon"],
    ],
)
def test_bad_options_exit_2(history: Env, args: list[str]) -> None:
    assert history.cli(*args).exit_code == ExitCode.USAGE


def test_runs_fire_option_wants_a_fire(history: Env) -> None:
    item = history.json("show", history.json("fires")[0]["id"])["items"][0]["id"]
    result = history.cli("runs", "--fire", item)
    assert result.exit_code == ExitCode.USAGE and "is not a fire id" in result.stderr


def test_a_store_no_daemon_made_is_not_created_and_exits_4(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"store: sqlite:///{tmp_path / 'none.sqlite'}\njobs: jobs\n")
    (tmp_path / "jobs").mkdir()
    env = Env(config, "")
    for args in (
        ["fires"],
        ["runs"],
        ["show", "fire_x"],
        ["watch", "--once"],
        ["pause", "x"],
        ["cancel", "x"],
    ):
        result = env.cli(*args)
        assert result.exit_code == ExitCode.CONFIG, args
        assert "start the daemon once" in result.stderr
    status = env.json("status", code=ExitCode.CONFIG)
    assert status["store"]["reachable"] is False and status["healthy"] is False
    assert not (tmp_path / "none.sqlite").exists()


def test_sensitive_input_values_never_appear(history: Env) -> None:
    claims = next(f for f in history.json("fires") if f["job"] == "claims")
    item = history.json("show", claims["id"])["items"][0]
    assert item["inputs"]["token"] == "***"
    shown = history.json("show", item["id"])
    assert shown["job"]["sensitive_inputs"] == ["token"]
    assert shown["item"]["inputs"]["token"] == "***"
    attempt = shown["attempts"][0]
    outputs = []
    for args in (
        ["fires"],
        ["runs", "-n", "1000"],
        ["show", claims["id"], "--limit", "0"],
        ["show", item["id"]],
        ["show", attempt["id"]],
        ["show", attempt["run_id"]],
        ["watch", "--once"],
        ["jobs"],
        ["status"],
    ):
        for extra in ([], ["--json"]):
            result = history.cli(*args, *extra)
            outputs.append(result.output)
    assert all(SECRET not in text for text in outputs)
    assert "token = ***" in history.cli("show", item["id"]).stdout


def test_trigger_refuses_a_sensitive_input_on_the_command_line(history: Env) -> None:
    result = history.cli("trigger", "claims", "--input", f"token={SECRET}")
    assert result.exit_code == ExitCode.USAGE
    assert "sensitive input" in result.stderr and SECRET not in result.output
    assert all(f["trigger"] == "manual" and f["status"] != "requested" for f in history.json("fires"))


def test_json_is_plain_json_on_stdout(history: Env) -> None:
    for args in (["fires"], ["runs"], ["watch"]):
        result = history.cli(*args, "--json")
        assert result.exit_code == 0
        json.loads(result.stdout)


@pytest.mark.parametrize("fixture", ["nope.yaml", "broken.yaml"])
def test_the_daemon_with_a_missing_or_broken_emulator_fixture_exits_with_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixture: str
) -> None:
    (tmp_path / "broken.yaml").write_text("pools: 12\n", encoding="utf-8")
    store = tmp_path / "store.sqlite"
    (tmp_path / "config.yaml").write_text(
        f"store: sqlite:///{store}\nemulator: {{fixture: {fixture}}}\n", encoding="utf-8"
    )
    (tmp_path / "jobs").mkdir()
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(build_app(), ["run", "--once"])
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert result.stderr.startswith("error: emulator.fixture: ") and fixture in result.stderr
    assert "Traceback" not in result.output
