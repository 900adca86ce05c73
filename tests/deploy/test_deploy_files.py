"""What can be checked of deploy/ on a machine that runs neither systemd services nor containers: the unit passes
`systemd-analyze verify` (where the command exists) and says what the service promises; the Dockerfile and
compose.yaml parse, every path they copy or mount exists, and the command they run is the installed console
script with a real subcommand and a config it accepts."""

from __future__ import annotations

import configparser
import glob
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cyberdesk_runner.cli import build_app
from cyberdesk_runner.config import load_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "systemd" / "cyberdesk-runner.service"


def _console_script() -> str:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert list(scripts) == ["cyberdesk-runner"]
    return "cyberdesk-runner"


def _is_command(args: list[str]) -> bool:
    """`cyberdesk-runner ARGS --help` works: ARGS start with a real subcommand and take these options."""
    return CliRunner().invoke(build_app(), [*args, "--help"]).exit_code == 0


# -- systemd -------------------------------------------------------------------------------------------


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def test_the_unit_says_what_the_service_promises() -> None:
    service = _unit()["Service"]
    assert service["Type"] == "notify" and service["Restart"] == "on-failure"
    assert service["DynamicUser"] == "yes" and service["StateDirectory"] == "cyberdesk-runner"
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes" and service["PrivateTmp"] == "yes"
    assert service["EnvironmentFile"].startswith("/etc/cyberdesk-runner/")
    assert int(service["WatchdogSec"].removesuffix("s")) >= 10
    command = shlex.split(service["ExecStart"])
    assert Path(command[0]).name == _console_script() and _is_command(command[1:])
    # No secret in the unit itself: they come from the EnvironmentFile.
    assert not re.search(r"(?i)(api_key|token|password|secret)", service.get("Environment", ""))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # The unit names the install location; verify (which checks that ExecStart exists) sees this venv's script.
    installed = Path(sys.executable).parent / _console_script()
    assert installed.exists()
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/cyberdesk-runner/bin/cyberdesk-runner", str(installed)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    # verify exits 0 on some problems it only warns about: any line about this unit is a problem too.
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if unit.name in line]
    assert result.returncode == 0 and complaints == [], result.stdout + result.stderr


# -- the container -------------------------------------------------------------------------------------


def _instructions(path: Path) -> list[tuple[str, str]]:
    """A Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined, comments left out."""
    text = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")),
    )
    found = []
    for line in text.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_the_dockerfile_builds_from_what_the_repository_holds() -> None:
    steps = _instructions(DEPLOY / "Dockerfile")
    keywords = [k for k, _ in steps]
    assert set(keywords) <= {
        "FROM",
        "WORKDIR",
        "COPY",
        "RUN",
        "ENV",
        "USER",
        "EXPOSE",
        "HEALTHCHECK",
        "STOPSIGNAL",
        "ENTRYPOINT",
        "CMD",
    }
    assert all(re.fullmatch(r"python:3\.1[1-9]-slim( AS \w+)?", args) for k, args in steps if k == "FROM")
    for keyword, args in steps:
        if keyword != "COPY" or args.startswith("--from="):
            continue
        *sources, _target = shlex.split(args)
        matches = {source: glob.glob(source, root_dir=REPO) for source in sources}
        # Docker fails a COPY whose sources match nothing at all; a pattern may match nothing beside others.
        assert any(matches.values()), args
        assert all(found or "*" in source for source, found in matches.items()), args
    # A non-root user runs the daemon (set after the last FROM, before the command).
    final = keywords[len(keywords) - 1 - keywords[::-1].index("FROM") :]
    users = [args for k, args in steps[len(steps) - len(final) :] if k == "USER"]
    assert users and users[-1] not in ("root", "0")
    health = next(args for k, args in steps if k == "HEALTHCHECK")
    assert "/healthz" in health and "8790" in health
    entrypoint = json.loads(next(args for k, args in steps if k == "ENTRYPOINT"))
    command = json.loads(next(args for k, args in steps if k == "CMD"))
    assert entrypoint == [_console_script()] and _is_command(command)
    # Installed from the lock (hashes checked), then the project alone.
    runs = " ".join(args for k, args in steps if k == "RUN")
    assert "--require-hashes -r requirements.lock" in runs and "--no-deps ." in runs


def test_the_image_config_is_valid_and_protected(tmp_path: Path) -> None:
    environ = {"CYBERDESK_API_KEY": "ck_test", "CYBERDESK_RUNNER_TOKEN": "0123456789abcdef01234567"}
    config = load_config(DEPLOY / "config.yaml", environ)
    assert config.http_listen is not None and config.http_listen.port == 8790
    assert config.server.auth is not None and config.unprotected_exposure() is None
    assert str(config.jobs) == "/etc/cyberdesk-runner/jobs"


def test_compose_runs_postgresql_and_two_daemons_from_this_image() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres:")
    runners = {name: s for name, s in services.items() if name.startswith("runner-")}
    assert len(runners) == 2
    ports = set()
    for service in runners.values():
        build = service["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (
            DEPLOY / "Dockerfile"
        ).resolve()
        assert _is_command(service["command"])
        store = service["environment"]["CYBERDESK_RUNNER_STORE"]
        assert store.startswith("postgresql+psycopg://") and "@db:5432/" in store
        assert service["depends_on"]["db"]["condition"] == "service_healthy"
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            assert (DEPLOY / source).exists(), volume
        ports |= {p.split(":")[1] for p in service["ports"]}
    assert len(ports) == 2  # the two daemons' pages on two host ports
    assert _is_command(services["emulator"]["command"])
