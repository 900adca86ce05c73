"""The daemon's config file -> `Config`, with file:line:col errors like job files.

`${VAR}` and `${VAR:-default}` in string values are replaced from the environment (`$${` writes a
literal `${`). Relative paths are resolved against the config file's folder. The settings sections are here;
the value types they are made of (listen addresses, URLs, secrets) and their checks are in config_values.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from cyberdesk_runner.config_values import (
    FROZEN,
    HostPort,
    HttpUrl,
    ListenAddress,
    check_alert_url,
    check_optional_secret,
    check_webhook_secret,
    empty_to_none,
    is_loopback,
)
from cyberdesk_runner.durations import Duration, format_duration
from cyberdesk_runner.passwords import parse_password_hash
from cyberdesk_runner.spec.diagnostics import describe, validation_errors
from cyberdesk_runner.spec.errors import JobFileError, SpecError
from cyberdesk_runner.spec.yamlpos import YamlDocument, YamlPath, format_path, parse_yaml, read_source

if TYPE_CHECKING:
    from cyberdesk.emulator import Emulator

__all__ = [
    "CONFIG_ENV_VAR",
    "Config",
    "ConfigError",
    "CyberdeskSettings",
    "DispatchSettings",
    "LogSettings",
    "ServerAuth",
    "ServerSettings",
    "TrackingSettings",
    "WebhookSettings",
    "default_config",
    "find_config_path",
    "load_config",
]

CONFIG_ENV_VAR = "CYBERDESK_RUNNER_CONFIG"
DEFAULT_STORE = "sqlite:///cyberdesk-runner.sqlite"
_SECRET_PATHS: list[YamlPath] = [
    ("cyberdesk", "api_key"),
    ("tracking", "webhook", "secret"),
    ("store",),
    ("server", "auth", "token"),
    ("server", "auth", "password_hash"),
]
_REFERENCE = re.compile(r"(?P<escaped>\$\$\{)|\$\{(?P<body>[^}]*)\}|(?P<unclosed>\$\{)")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ConfigError(JobFileError):
    """The config file could not be loaded; `errors` holds every problem found."""


class CyberdeskSettings(BaseModel):
    """The Cyberdesk API. Without an api_key the daemon starts the embedded emulator instead."""

    model_config = FROZEN

    api_key: Annotated[SecretStr | None, BeforeValidator(empty_to_none)] = None
    base_url: HttpUrl = "https://api.cyberdesk.io"


class WebhookSettings(BaseModel):
    """Where Cyberdesk's run-completed webhooks (signed by Svix) are received."""

    model_config = FROZEN

    listen: ListenAddress
    path: str = "/webhooks/cyberdesk"
    secret: Annotated[SecretStr, AfterValidator(check_webhook_secret)]
    public_url: Annotated[HttpUrl | None, BeforeValidator(empty_to_none)] = None

    @field_validator("path")
    @classmethod
    def _check_path(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"must start with '/', got {path!r}")
        return path


class TrackingSettings(BaseModel):
    """How run statuses are followed: polling always; webhooks too when configured (they are hints)."""

    model_config = FROZEN

    webhook: WebhookSettings | None = None
    poll_interval: Duration = timedelta(seconds=15)
    #: How long news of a run's end may wait for more news to share its store transaction (default: none). Trades
    #: that much tracking latency for less CPU per run when news comes a few milliseconds apart.
    news_window: Duration | None = None

    @field_validator("news_window")
    @classmethod
    def _check_news_window(cls, window: timedelta | None) -> timedelta | None:
        if window is not None and window > timedelta(seconds=1):
            raise ValueError(
                f"must be at most 1s (it delays every run's news), got {format_duration(window)!r}"
            )
        return window


class ServerAuth(BaseModel):
    """Who may read the status page and /metrics: a bearer token, or one user with a password hash."""

    model_config = FROZEN

    token: Annotated[SecretStr | None, BeforeValidator(empty_to_none)] = None
    user: str | None = None
    password_hash: Annotated[SecretStr | None, BeforeValidator(empty_to_none)] = None

    @field_validator("token")
    @classmethod
    def _check_token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < 16:
            raise ValueError("too short: use at least 16 random characters (e.g. `openssl rand -hex 32`)")
        return token

    @field_validator("password_hash")
    @classmethod
    def _check_hash(cls, password_hash: SecretStr | None) -> SecretStr | None:
        if password_hash is not None:
            parse_password_hash(password_hash.get_secret_value())  # PasswordHashError is a ValueError
        return password_hash

    @model_validator(mode="after")
    def _one_way(self) -> ServerAuth:
        has_user = self.user is not None or self.password_hash is not None
        if self.token is not None and has_user:
            raise ValueError("give either token, or user and password_hash, not both")
        if self.token is None and not (self.user and self.password_hash is not None):
            raise ValueError("give token, or both user and password_hash")
        return self


class ServerSettings(BaseModel):
    """The HTTP server: the status page, /healthz and /metrics (and the webhook receiver when configured)."""

    model_config = FROZEN

    listen: Annotated[ListenAddress | None, BeforeValidator(empty_to_none)] = HostPort("127.0.0.1", 8790)
    auth: ServerAuth | None = None


class LogSettings(BaseModel):
    model_config = FROZEN

    format: Literal["console", "json"] = "console"
    level: Annotated[
        Literal["debug", "info", "warning", "error", "critical"],
        BeforeValidator(lambda value: value.lower() if isinstance(value, str) else value),
    ] = "info"


class DispatchSettings(BaseModel):
    model_config = FROZEN

    max_in_flight_requests: int = Field(32, ge=1)
    lease: Duration = timedelta(seconds=30)
    retention: Duration = timedelta(days=30)


class EmulatorSettings(BaseModel):
    """The embedded emulator, used when no api_key is configured (the demo and tests)."""

    model_config = FROZEN

    #: Simulated time runs this many times faster: at 20, a five-minute run takes 15 seconds.
    speed: float = Field(20.0, gt=0)
    #: Simulated seconds a run takes, "MIN-MAX".
    run_duration: str = Field("30-300", pattern=r"^\d+(\.\d+)?-\d+(\.\d+)?$")
    failure_rate: float = Field(0.05, ge=0, le=1)
    #: A fleet fixture (YAML); default: the built-in demo fleet.
    fixture: Path | None = None
    seed: int | None = None
    #: At most this many webhook deliveries per second (default: as fast as the daemon answers).
    webhook_rate: float | None = Field(None, gt=0)

    @field_validator("fixture")
    @classmethod
    def _resolve_fixture(cls, fixture: Path | None, info: ValidationInfo) -> Path | None:
        return None if fixture is None else _base_dir(info) / fixture.expanduser()

    def build(self) -> Emulator:
        """An emulator with these settings (the embedded one of the daemon, and the one `validate` asks)."""
        from cyberdesk.emulator import Emulator, EmulatorOptions

        return Emulator(
            EmulatorOptions.build(
                speed=self.speed,
                run_duration=self.run_duration,
                failure_rate=self.failure_rate,
                fixture=str(self.fixture) if self.fixture else None,
                seed=self.seed,
                webhook_rate=self.webhook_rate,
            )
        )


AlertEventName = Literal[
    "item_failed",
    "fire_failed",
    "fire_succeeded",
    "fire_late",
    "fire_skipped",
    "desktop_disconnected",
    "daemon_lost",
]


class AlertDestination(BaseModel):
    """Where alerts go. The URL and secret stay in memory: the store keeps only the destination's name."""

    model_config = FROZEN

    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    url: Annotated[SecretStr, AfterValidator(check_alert_url)]
    format: Literal["json", "slack"] = "json"
    secret: Annotated[
        SecretStr | None, BeforeValidator(empty_to_none), AfterValidator(check_optional_secret)
    ] = None
    on: tuple[AlertEventName, ...] = Field(
        ("item_failed", "fire_failed", "fire_late", "fire_skipped", "desktop_disconnected", "daemon_lost"),
        min_length=1,
    )
    jobs: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _check_secret(self) -> Self:
        if self.format == "json" and self.secret is None:
            raise ValueError("a json destination needs a secret (whsec_...) to sign its events")
        return self


class Config(BaseModel):
    """The daemon's settings. Build it with `load_config`; paths and the store URL are absolute."""

    model_config = FROZEN

    cyberdesk: CyberdeskSettings = CyberdeskSettings()
    store: str = Field(DEFAULT_STORE, validate_default=True, repr=False)  # may hold a password
    jobs: Path = Field(Path("jobs"), validate_default=True)
    tracking: TrackingSettings = TrackingSettings()
    server: ServerSettings = ServerSettings()
    log: LogSettings = LogSettings()
    dispatch: DispatchSettings = DispatchSettings()
    emulator: EmulatorSettings = EmulatorSettings()
    alerts: tuple[AlertDestination, ...] = ()
    _source: Path | None = PrivateAttr(default=None)

    @property
    def uses_emulator(self) -> bool:
        """True when no API key is configured: the daemon runs against the embedded emulator."""
        return self.cyberdesk.api_key is None

    @property
    def source(self) -> Path | None:
        """The config file this came from; None for the built-in defaults."""
        return self._source

    @property
    def http_listen(self) -> HostPort | None:
        """Where the daemon's HTTP server listens: the webhook receiver's address when webhooks are configured
        (one server serves both), else `server.listen`."""
        webhook = self.tracking.webhook
        return webhook.listen if webhook is not None else self.server.listen

    def unprotected_exposure(self) -> str | None:
        """Why the daemon must not start: its page and metrics would be open beyond this host. None if fine."""
        listen = self.http_listen
        if listen is None or self.server.auth is not None or is_loopback(listen.host):
            return None
        key = "tracking.webhook.listen" if self.tracking.webhook is not None else "server.listen"
        return (
            f"{key} is {listen}, not a loopback address, and server.auth is not set: the status page and "
            "/metrics would be open to anyone who can reach it. Set server.auth (a token, or a user and "
            "password_hash from `cyberdesk-runner hash-password`), or listen on 127.0.0.1"
        )

    @property
    def store_display(self) -> str:
        """The store URL with any password masked, for logs and status output."""
        return make_url(self.store).render_as_string(hide_password=True)

    @field_validator("jobs")
    @classmethod
    def _resolve_jobs(cls, jobs: Path, info: ValidationInfo) -> Path:
        return _base_dir(info) / jobs.expanduser()

    @field_validator("store")
    @classmethod
    def _resolve_store(cls, store: str, info: ValidationInfo) -> str:
        # Never quote `store` in errors: it may contain a database password.
        try:
            url = make_url(store)
        except ArgumentError:
            raise ValueError(
                "expected a SQLAlchemy URL like sqlite:///runner.sqlite or postgresql+psycopg://..."
            ) from None
        if url.get_backend_name() == "postgresql":
            # A bare postgresql:// means psycopg2 to SQLAlchemy, which is not installed; psycopg 3 is.
            return (
                store
                if url.drivername != "postgresql"
                else store.replace("postgresql", "postgresql+psycopg", 1)
            )
        if url.get_backend_name() != "sqlite":
            raise ValueError(
                f"unsupported database {url.get_backend_name()!r}: use sqlite or postgresql+psycopg"
            )
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            return store
        path = _base_dir(info) / Path(database).expanduser()
        return url.set(database=str(path)).render_as_string(hide_password=False)


def default_config(base_dir: Path | None = None) -> Config:
    """The config used when there is no config file: every default, paths relative to `base_dir` (cwd)."""
    return Config.model_validate({}, context={"base_dir": (base_dir or Path.cwd()).resolve()})


def find_config_path(
    explicit: Path | None, environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Path | None:
    """`--config PATH`, else $CYBERDESK_RUNNER_CONFIG, else ./config.yaml, else ./config.example.yaml.

    An explicit path or the variable naming a missing file is an error (ConfigError), not a fallback:
    silently running with another config would be worse. None means: use `default_config()`.
    """
    env = os.environ if environ is None else environ
    folder = cwd or Path.cwd()
    named = (
        explicit if explicit is not None else Path(env[CONFIG_ENV_VAR]) if env.get(CONFIG_ENV_VAR) else None
    )
    if named is not None:
        path = named if named.is_absolute() else folder / named
        if not path.is_file():
            origin = "--config" if explicit is not None else f"${CONFIG_ENV_VAR}"
            raise ConfigError([SpecError(named, None, None, "", f"config file not found (from {origin})")])
        return path
    for name in ("config.yaml", "config.example.yaml"):
        if (folder / name).is_file():
            return folder / name
    return None


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate the config file at `path` (None: `default_config()`); raises ConfigError."""
    if path is None:
        return default_config()
    try:
        source = read_source(path)
        doc = parse_yaml(source, path)
    except JobFileError as exc:
        raise ConfigError(exc.errors) from None
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        pos = doc.positions[()]
        raise ConfigError(
            [
                SpecError(
                    path, pos.line, pos.column, "", f"expected a mapping of settings, got {describe(data)}"
                )
            ]
        )
    errors: list[SpecError] = []
    data = _substitute(data, (), doc, path, os.environ if environ is None else environ, errors)
    if errors:
        raise ConfigError(errors)
    try:
        config = Config.model_validate(data, context={"base_dir": path.resolve().parent})
    except ValidationError as exc:
        raise ConfigError(validation_errors(exc, doc, path, Config, _SECRET_PATHS)) from None
    config._source = path
    return config


def _base_dir(info: ValidationInfo) -> Path:
    context = info.context if isinstance(info.context, dict) else {}
    base = context.get("base_dir")
    return base if isinstance(base, Path) else Path.cwd()


def _substitute(
    value: Any, path: YamlPath, doc: YamlDocument, file: Path, env: Mapping[str, str], errors: list[SpecError]
) -> Any:
    """`value` with `${VAR}` references replaced in every string (not in keys)."""
    if isinstance(value, dict):
        return {key: _substitute(item, (*path, key), doc, file, env, errors) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, (*path, index), doc, file, env, errors) for index, item in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "${"
        problem = _reference_problem(match["body"], env) if match["body"] is not None else "unclosed '${'"
        if problem is None:
            name, has_default, default = match["body"].partition(":-")
            return env.get(name) or (default if has_default else "")
        pos = doc.locate(path).pos
        errors.append(SpecError(file, pos.line, pos.column, format_path(path), problem))
        return ""

    return _REFERENCE.sub(replace, value)


def _reference_problem(body: str, env: Mapping[str, str]) -> str | None:
    name, has_default, _ = body.partition(":-")
    if not _ENV_NAME.fullmatch(name):
        return f"'${{{body}}}' is not a variable reference: write ${{NAME}} or ${{NAME:-default}}"
    if not env.get(name) and not has_default:
        state = "is empty" if name in env else "is not set"
        return f"environment variable {name} {state} (write ${{{name}:-default}} to give a default)"
    return None
