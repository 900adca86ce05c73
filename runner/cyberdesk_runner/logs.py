"""Structured logs (structlog): one event per state change, console or JSON, with secrets scrubbed."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import structlog

_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Scrub this value from every log line from now on (defence in depth: secrets are never logged on
    purpose, but an error message from a library might quote one)."""
    if value and len(value) >= 4:
        _secrets.add(value)


def _scrub(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if not _secrets:
        return event
    for key, value in event.items():
        if isinstance(value, str):
            for secret in _secrets:
                if secret in value:
                    value = value.replace(secret, "***")
            event[key] = value
    return event


class _CurrentStderr:
    """Writes to whatever sys.stderr is at the time (test runners and CLIs swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(fmt: str = "console", level: str = "info", stream: Any = None) -> None:
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream is None and sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _scrub,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=stream or cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "cyberdesk_runner") -> Any:
    return structlog.get_logger(name)


def bound_for_batch(log: Any, level: int = logging.INFO) -> tuple[Any, bool]:
    """`log` bound once for a batch of events, and whether events at `level` get logged at all.

    The loggers of `get_logger` bind anew on every call (the configuration may change: tests, CLIs), a few
    microseconds each even for a filtered-out event; a loop logging an event per run binds once, and skips
    building events nobody logs.
    """
    bound = log.bind()
    enabled = getattr(bound, "is_enabled_for", None)
    return bound, enabled is None or bool(enabled(level))
