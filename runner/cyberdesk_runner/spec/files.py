"""The `files:` job key: files attached to each run, their paths templates over the item's inputs.

Pure: templates are checked here (names only, `{claim_id}`), rendered per item by `render_path`; reading the
files is the dispatcher's (`files/inputs.py`), when the run is created.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = ["FileInputSpec", "TemplateError", "render_path", "template_names"]

_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    """A path template that cannot be rendered (bad syntax, or a name the item has no value for)."""


def template_names(template: str) -> list[str]:
    """The input names a path template uses, in order; raises TemplateError for anything but `{name}`."""
    names: list[str] = []
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise TemplateError(
            f"bad template {template!r}: {exc} (write {{name}}, and {{{{ for a brace)"
        ) from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise TemplateError(
                f"bad placeholder {{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
                f" in {template!r}: write an input name only, like {{claim_id}}"
            )
        names.append(name)
    return names


def render_path(template: str, inputs: Mapping[str, Any]) -> str:
    """`template` with each `{name}` replaced by the item's value; TemplateError names what is missing."""
    missing = [name for name in template_names(template) if inputs.get(name) is None]
    if missing:
        raise TemplateError(
            f"the item has no value for {', '.join(map(repr, missing))} used by the file path {template!r}"
        )
    return template.format_map({k: _text(v) for k, v in inputs.items()})


def _text(value: Any) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if "/" in text or "\\" in text or text in ("..", "."):
        # An input value never walks out of the folder the job file names.
        raise TemplateError(f"an input value used in a file path may not contain a path separator: {text!r}")
    return text


def _check_template(template: str) -> str:
    if not template.strip():
        raise ValueError("must not be empty")
    try:
        template_names(template)
    except TemplateError as exc:
        raise ValueError(str(exc)) from None
    return template


class FileInputSpec(BaseModel):
    """One file attached to each run (Cyberdesk `file_inputs`), read when the run is created."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="File input")

    path: Annotated[str, AfterValidator(_check_template)] = Field(
        description="The file, relative to the job file's folder; {name} placeholders take the item's inputs.",
        examples=["data/claims/{claim_id}.pdf"],
    )
    target_path: str | None = Field(
        None,
        description="Where Cyberdesk puts the file on the desktop (its default when not given).",
        examples=["C:\\Claims\\Inbox"],
    )
    cleanup: bool = Field(
        False, description="Delete the file from the desktop after the run (cleanup_imports_after_run)."
    )
