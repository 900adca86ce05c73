"""The path of a fire's result file: a template with `{job}`, `{fire}` and `{fire_created:<strftime>}`."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from pathlib import Path

PLACEHOLDERS = ("job", "fire", "fire_created")
_SAMPLE = {
    "job": "job",
    "fire": "fire_0123456789abcdef",
    "fire_created": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
}


def template_problem(template: str) -> str | None:
    """Why `template` cannot name result files, or None."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        return f"bad placeholder syntax ({exc}); write {{{{ and }}}} for literal braces"
    for field in fields:
        if field not in PLACEHOLDERS:
            return f"unknown placeholder {{{field}}}: use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
    if "fire" not in fields:
        return "the path must contain {fire}, so that every fire gets its own file"
    try:
        render(template, **_SAMPLE)  # type: ignore[arg-type]
    except (ValueError, KeyError, IndexError) as exc:
        return f"cannot be rendered: {exc}"
    return None


def render(template: str, *, job: str, fire: str, fire_created: datetime) -> str:
    return template.format(job=job, fire=fire, fire_created=fire_created)


def result_path(template: str, base: Path, *, job: str, fire: str, fire_created: datetime) -> Path:
    """The file's absolute path; a relative template is relative to `base` (the config file's folder)."""
    path = Path(render(template, job=job, fire=fire, fire_created=fire_created)).expanduser()
    return path if path.is_absolute() else base / path
