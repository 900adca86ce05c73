"""The daemon config file: defaults, paths, ${VAR} substitution, secrets, discovery, errors."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from cyberdesk_runner.config import (
    CONFIG_ENV_VAR,
    ConfigError,
    default_config,
    find_config_path,
    load_config,
)
from cyberdesk_runner.config_values import HostPort
from cyberdesk_runner.spec import JobFileError, load_jobs

REPO = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ErrorTuple = tuple[str, int | None, int | None, str, str]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_errors(path: Path, environ: dict[str, str] | None = None) -> list[ErrorTuple]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ or {})
    return [(e.file.name, e.line, e.column, e.field_path, e.message) for e in info.value.errors]


def test_defaults_without_a_config_file(tmp_path: Path) -> None:
    config = default_config(tmp_path)
    assert config.source is None
    assert config.uses_emulator and config.cyberdesk.api_key is None
    assert config.cyberdesk.base_url == "https://api.cyberdesk.io"
    assert config.store == f"sqlite:///{tmp_path.resolve()}/cyberdesk-runner.sqlite"
    assert config.jobs == tmp_path.resolve() / "jobs"
    assert config.tracking.webhook is None and config.tracking.poll_interval == timedelta(seconds=15)
    assert config.server.listen == HostPort("127.0.0.1", 8790)
    assert (config.log.format, config.log.level) == ("console", "info")
    assert config.dispatch.max_in_flight_requests == 32
    assert config.dispatch.lease == timedelta(seconds=30) and config.dispatch.retention == timedelta(days=30)


def test_load_config_none_uses_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(None).jobs == tmp_path.resolve() / "jobs"


def test_empty_file_gives_defaults_next_to_it(tmp_path: Path) -> None:
    path = write(tmp_path / "etc" / "runner.yaml", "# nothing set\n")
    config = load_config(path, {})
    assert config.source == path
    assert config.jobs == (tmp_path / "etc" / "jobs").resolve()
    assert config.store == f"sqlite:///{(tmp_path / 'etc').resolve()}/cyberdesk-runner.sqlite"


def test_relative_paths_are_resolved_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "etc" / "config.yaml", "store: sqlite:///data/runner.sqlite\njobs: ../jobs\n")
    monkeypatch.chdir(tmp_path / "etc")
    config = load_config(Path("config.yaml"), {})
    assert config.store == f"sqlite:///{path.parent.resolve()}/data/runner.sqlite"
    assert config.jobs == path.parent.resolve() / "../jobs"


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        ("sqlite:////var/lib/runner.sqlite", "sqlite:////var/lib/runner.sqlite"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql+psycopg://runner:pw@db:5432/runner", "postgresql+psycopg://runner:pw@db:5432/runner"),
        ("postgresql://runner@db/runner", "postgresql+psycopg://runner@db/runner"),
    ],
)
def test_store_urls(tmp_path: Path, store: str, expected: str) -> None:
    path = write(tmp_path / "config.yaml", f"store: '{store}'\n")
    assert load_config(path, {}).store == expected


def test_store_password_is_not_in_repr(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "store: postgresql+psycopg://runner:${PGPASSWORD}@db/runner\n")
    config = load_config(path, {"PGPASSWORD": "pg-s3cret"})
    assert config.store == "postgresql+psycopg://runner:pg-s3cret@db/runner"
    assert config.store_display == "postgresql+psycopg://runner:***@db/runner"
    assert "pg-s3cret" not in repr(config) and "pg-s3cret" not in str(config)


def test_bad_store_urls(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "store: mysql://user:hunter2@db/runner\n")
    assert config_errors(path) == [
        ("config.yaml", 1, 8, "store", "unsupported database 'mysql': use sqlite or postgresql+psycopg")
    ]
    path = write(tmp_path / "config.yaml", "store: not a url hunter2\n")
    errors = config_errors(path)
    assert errors == [
        (
            "config.yaml",
            1,
            8,
            "store",
            "expected a SQLAlchemy URL like sqlite:///runner.sqlite or postgresql+psycopg://...",
        )
    ]


def test_full_config(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.yaml",
        f"""\
        cyberdesk:
          api_key: ${{CYBERDESK_API_KEY}}
          base_url: https://api.example.com/
        tracking:
          webhook:
            listen: 0.0.0.0:8791
            secret: {WEBHOOK_SECRET}
            public_url: https://runner.example.com/webhooks/cyberdesk
          poll_interval: 1m
        server:
          listen: null
        log: {{format: json, level: DEBUG}}
        dispatch: {{max_in_flight_requests: 8, lease: 1m, retention: 7d}}
        """,
    )
    config = load_config(path, {"CYBERDESK_API_KEY": "ck_live_abc123"})
    assert not config.uses_emulator
    assert config.cyberdesk.api_key is not None
    assert config.cyberdesk.api_key.get_secret_value() == "ck_live_abc123"
    assert config.cyberdesk.base_url == "https://api.example.com"
    webhook = config.tracking.webhook
    assert webhook is not None
    assert webhook.listen == HostPort("0.0.0.0", 8791) and str(webhook.listen) == "0.0.0.0:8791"
    assert webhook.path == "/webhooks/cyberdesk"
    assert webhook.secret.get_secret_value() == WEBHOOK_SECRET
    assert webhook.public_url == "https://runner.example.com/webhooks/cyberdesk"
    assert config.tracking.poll_interval == timedelta(minutes=1)
    assert config.server.listen is None
    assert (config.log.format, config.log.level) == ("json", "debug")
    assert config.dispatch.max_in_flight_requests == 8 and config.dispatch.retention == timedelta(days=7)
    text = repr(config) + str(config) + repr(config.cyberdesk) + repr(webhook)
    assert "ck_live_abc123" not in text and WEBHOOK_SECRET not in text


def test_ipv6_listen(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", 'server: {listen: "[::1]:9000"}\n')
    listen = load_config(path, {}).server.listen
    assert listen == HostPort("::1", 9000) and str(listen) == "[::1]:9000"


def test_env_substitution(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.yaml",
        """\
        jobs: ${JOBS_DIR:-jobs}/${TEAM}
        server: {listen: "${HOST:-127.0.0.1}:${PORT:-8790}"}
        log: {level: "${LEVEL:-}info"}
        dispatch: {max_in_flight_requests: "${MAX:-16}"}
        tracking: {poll_interval: "$${NOT_A_REFERENCE}"}
        """,
    )
    # `$${` writes a literal `${`, which is then (rightly) not a duration.
    assert config_errors(path, {"TEAM": "claims"}) == [
        (
            "config.yaml",
            5,
            27,
            "tracking.poll_interval",
            "expected a duration like 30s, 15m or 2h, got '${NOT_A_REFERENCE}'",
        )
    ]
    path.write_text(path.read_text().replace('tracking: {poll_interval: "$${NOT_A_REFERENCE}"}\n', ""))
    config = load_config(path, {"TEAM": "claims", "PORT": "9999", "JOBS_DIR": ""})
    assert config.jobs == tmp_path.resolve() / "jobs" / "claims"  # an empty variable takes the default
    assert config.server.listen == HostPort("127.0.0.1", 9999)
    assert config.log.level == "info" and config.dispatch.max_in_flight_requests == 16


def test_escaped_reference_is_kept_literally(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "cyberdesk: {base_url: 'https://x.example.com/$${path}'}\n")
    assert load_config(path, {}).cyberdesk.base_url == "https://x.example.com/${path}"


def test_empty_api_key_means_emulator(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "cyberdesk:\n  api_key: ${CYBERDESK_API_KEY:-}\n")
    assert load_config(path, {}).uses_emulator
    assert not load_config(path, {"CYBERDESK_API_KEY": "ck_1"}).uses_emulator


def test_unset_variables_are_errors_naming_the_variable_never_a_value(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.yaml",
        """\
        cyberdesk:
          api_key: ${CYBERDESK_API_KEY}
        store: postgresql+psycopg://runner:${PGPASSWORD}@${PGHOST}/runner
        tracking:
          webhook: {listen: "0.0.0.0:1", secret: "${EMPTY}"}
        jobs: ${1BAD}
        log: {level: "${UNCLOSED"}
        """,
    )
    errors = config_errors(path, {"PGHOST": "db.internal", "EMPTY": ""})
    assert errors == [
        (
            "config.yaml",
            2,
            12,
            "cyberdesk.api_key",
            "environment variable CYBERDESK_API_KEY is not set (write ${CYBERDESK_API_KEY:-default} to give a default)",
        ),
        (
            "config.yaml",
            3,
            8,
            "store",
            "environment variable PGPASSWORD is not set (write ${PGPASSWORD:-default} to give a default)",
        ),
        (
            "config.yaml",
            5,
            42,
            "tracking.webhook.secret",
            "environment variable EMPTY is empty (write ${EMPTY:-default} to give a default)",
        ),
        (
            "config.yaml",
            6,
            7,
            "jobs",
            "'${1BAD}' is not a variable reference: write ${NAME} or ${NAME:-default}",
        ),
        ("config.yaml", 7, 14, "log.level", "unclosed '${'"),
    ]
    assert not any("db.internal" in str(error) for error in errors)


def test_validation_errors_point_at_the_value(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.yaml",
        """\
        cyberdesk:
          apikey: x
          base_url: ftp://example.com
        tracking:
          poll_intervall: 15s
          webhook:
            listen: localhost
            path: webhooks
            secret: ${SECRET}
        server: {listen: "127.0.0.1:70000"}
        log: {format: text, level: loud}
        dispatch: {max_in_flight_requests: 0, lease: 30}
        stores: x
        """,
    )
    errors = config_errors(path, {"SECRET": "shh-not-svix"})
    assert errors == [
        ("config.yaml", 2, 3, "cyberdesk.apikey", "unknown key 'apikey'; did you mean 'api_key'?"),
        (
            "config.yaml",
            3,
            13,
            "cyberdesk.base_url",
            "expected an http(s) URL like https://api.cyberdesk.io, got 'ftp://example.com'",
        ),
        (
            "config.yaml",
            5,
            3,
            "tracking.poll_intervall",
            "unknown key 'poll_intervall'; did you mean 'poll_interval'?",
        ),
        (
            "config.yaml",
            7,
            13,
            "tracking.webhook.listen",
            "expected host:port like 127.0.0.1:8790 (0.0.0.0:8790 for every interface), got 'localhost'",
        ),
        ("config.yaml", 8, 11, "tracking.webhook.path", "must start with '/', got 'webhooks'"),
        (
            "config.yaml",
            9,
            13,
            "tracking.webhook.secret",
            "expected a Svix signing secret like whsec_<base64> (from the Cyberdesk webhook settings)",
        ),
        (
            "config.yaml",
            10,
            18,
            "server.listen",
            "expected host:port like 127.0.0.1:8790 (0.0.0.0:8790 for every interface), got '127.0.0.1:70000'",
        ),
        ("config.yaml", 11, 15, "log.format", "expected 'console' or 'json', got 'text'"),
        (
            "config.yaml",
            11,
            28,
            "log.level",
            "expected 'debug', 'info', 'warning', 'error' or 'critical', got 'loud'",
        ),
        ("config.yaml", 12, 36, "dispatch.max_in_flight_requests", "must be at least 1, got 0"),
        (
            "config.yaml",
            12,
            46,
            "dispatch.lease",
            "expected a duration like 30s, 15m or 2h, got 30 (a number needs a unit, e.g. 30s or 30m)",
        ),
        ("config.yaml", 13, 1, "stores", "unknown key 'stores'; did you mean 'store'?"),
    ]
    assert not any("shh-not-svix" in error[4] for error in errors)


def test_webhook_secret_must_be_base64_after_the_prefix(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.yaml", 'tracking: {webhook: {listen: "0.0.0.0:1", secret: "whsec_n%t*b64"}}\n'
    )
    assert config_errors(path) == [
        (
            "config.yaml",
            1,
            51,
            "tracking.webhook.secret",
            "expected a Svix signing secret like whsec_<base64> (from the Cyberdesk webhook settings); "
            "the part after whsec_ is not base64",
        )
    ]


def test_webhook_needs_listen_and_secret(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "tracking:\n  webhook:\n    path: /hooks\n")
    assert config_errors(path) == [
        ("config.yaml", 2, 3, "tracking.webhook.listen", "required key is missing"),
        ("config.yaml", 2, 3, "tracking.webhook.secret", "required key is missing"),
    ]


def test_yaml_problems_in_the_config(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "jobs: a\njobs: b\n")
    assert config_errors(path) == [
        ("config.yaml", 2, 1, "jobs", "duplicate key 'jobs' (first given on line 1)")
    ]
    path = write(tmp_path / "config.yaml", "- jobs\n")
    assert config_errors(path) == [("config.yaml", 1, 1, "", "expected a mapping of settings, got a list")]
    path = write(tmp_path / "config.yaml", "jobs: [\n")
    assert config_errors(path)[0][:4] == ("config.yaml", 2, 1, "")
    assert issubclass(ConfigError, JobFileError)


def test_discovery_order(tmp_path: Path) -> None:
    explicit = write(tmp_path / "explicit.yaml", "")
    from_env = write(tmp_path / "from-env.yaml", "")
    env = {CONFIG_ENV_VAR: str(from_env)}
    assert find_config_path(explicit, env, tmp_path) == explicit
    assert find_config_path(None, env, tmp_path) == from_env
    assert find_config_path(None, {}, tmp_path) is None
    example = write(tmp_path / "config.example.yaml", "")
    assert find_config_path(None, {}, tmp_path) == example
    config = write(tmp_path / "config.yaml", "")
    assert find_config_path(None, {}, tmp_path) == config
    assert find_config_path(None, {CONFIG_ENV_VAR: ""}, tmp_path) == config  # empty means unset
    assert find_config_path(Path("explicit.yaml"), {}, tmp_path) == explicit  # relative to cwd


def test_discovery_uses_the_real_environment_and_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CONFIG_ENV_VAR, "mine.yaml")
    mine = write(tmp_path / "mine.yaml", "")
    assert find_config_path(None) == tmp_path / "mine.yaml" == mine


@pytest.mark.parametrize(("explicit", "origin"), [(True, "--config"), (False, "$CYBERDESK_RUNNER_CONFIG")])
def test_a_named_config_that_is_missing_is_an_error(tmp_path: Path, explicit: bool, origin: str) -> None:
    write(tmp_path / "config.yaml", "")  # never a silent fallback
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as info:
        if explicit:
            find_config_path(missing, {}, tmp_path)
        else:
            find_config_path(None, {CONFIG_ENV_VAR: str(missing)}, tmp_path)
    (error,) = info.value.errors
    assert (error.file, error.line, error.message) == (
        missing,
        None,
        f"config file not found (from {origin})",
    )


def test_shipped_example_config_and_its_jobs_load() -> None:
    config = load_config(REPO / "config.example.yaml", {})
    assert config.uses_emulator
    assert config.jobs == REPO / "jobs"
    assert config.store == f"sqlite:///{REPO}/cyberdesk-runner.sqlite"
    assert config.tracking.poll_interval == timedelta(seconds=15) and config.tracking.webhook is None
    assert config.log.format == "console"
    result = load_jobs(config.jobs)
    assert result.errors == [] and len(result.jobs) == 7


def test_shipped_example_commented_settings_are_valid(tmp_path: Path) -> None:
    """Uncommenting the examples in config.example.yaml gives a valid config."""
    lines = []
    for line in (REPO / "config.example.yaml").read_text(encoding="utf-8").splitlines():
        stripped = line.lstrip()
        uncommented = line.replace("# ", "", 1)
        if stripped.startswith(
            ("# api_key: ${CYBERDESK_API_KEY}", "# store: postgresql", "# webhook:", "# auth: {token")
        ) or (stripped.startswith("#   ") and ":" in stripped):
            lines.append(uncommented if not stripped.startswith("#   ") else line.replace("#   ", "  ", 1))
        elif stripped.startswith("store: sqlite"):
            continue
        else:
            lines.append(line)
    path = write(tmp_path / "config.yaml", "\n".join(lines) + "\n")
    environ = {
        "CYBERDESK_API_KEY": "ck_test",
        "PGPASSWORD": "pw",
        "CYBERDESK_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CYBERDESK_RUNNER_TOKEN": "0123456789abcdef0123",
    }
    config = load_config(path, environ)
    assert config.server.auth is not None and config.unprotected_exposure() is None
    assert not config.uses_emulator
    assert config.store == "postgresql+psycopg://runner:pw@db.internal:5432/cyberdesk_runner"
    assert config.tracking.webhook is not None and config.tracking.webhook.listen == HostPort("0.0.0.0", 8791)


def test_the_embedded_emulator_can_cap_its_webhooks(tmp_path: Path) -> None:
    assert default_config(tmp_path).emulator.webhook_rate is None  # no cap unless asked
    path = write(tmp_path / "config.yaml", "emulator:\n  webhook_rate: 200\n")
    assert load_config(path, {}).emulator.webhook_rate == 200
    write(path, "emulator:\n  webhook_rate: 0\n")
    [(name, line, _, field, message)] = config_errors(path)
    assert (name, line, field) == ("config.yaml", 2, "emulator.webhook_rate")
    assert "more than 0" in message and "got 0" in message


def test_a_news_window_is_optional_and_at_most_a_second(tmp_path: Path) -> None:
    assert default_config(tmp_path).tracking.news_window is None  # news of an end goes at once unless asked
    path = write(tmp_path / "config.yaml", "tracking:\n  news_window: 30ms\n")
    assert load_config(path, {}).tracking.news_window == timedelta(milliseconds=30)
    write(path, "tracking:\n  news_window: 5s\n")
    [(name, line, _, field, message)] = config_errors(path)
    assert (name, line, field) == ("config.yaml", 2, "tracking.news_window")
    assert "at most 1s" in message and "5s" in message
