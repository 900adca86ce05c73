"""The `files:` and `budget:` job keys: path templates checked against the item source's columns at load (what
`validate` and the daemon report, with file:line), and rendered per item."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cyberdesk_runner.spec import JobFileError, load_job_file
from cyberdesk_runner.spec.files import TemplateError, render_path, template_names

HEAD = """
    name: claims
    workflow: Submit insurance claim
    target: {pool: claims-team}
"""


def _load(tmp_path: Path, body: str) -> JobFileError | None:
    path = tmp_path / "claims.yaml"
    path.write_text(textwrap.dedent(HEAD) + textwrap.dedent(body))
    try:
        load_job_file(path)
    except JobFileError as exc:
        return exc
    return None


def test_template_names_and_rendering() -> None:
    assert template_names("data/{claim_id}/{kind}.pdf") == ["claim_id", "kind"]
    assert render_path("data/{claim_id}.pdf", {"claim_id": "C-1", "other": 2}) == "data/C-1.pdf"
    with pytest.raises(TemplateError, match="no value for 'claim_id'"):
        render_path("data/{claim_id}.pdf", {"id": "C-1"})


@pytest.mark.parametrize(
    "template", ["data/{claim_id!r}.pdf", "data/{claim_id:>5}.pdf", "data/{0}.pdf", "data/{x"]
)
def test_a_template_other_than_names_is_an_error_at_its_line(tmp_path: Path, template: str) -> None:
    error = _load(tmp_path, f"items: [{{claim_id: C-1}}]\nfiles:\n  - path: '{template}'\n")
    assert error is not None
    [found] = error.errors
    assert found.field_path == "files[0].path" and found.line == 7


def test_a_name_no_item_has_is_an_error_naming_the_known_columns(tmp_path: Path) -> None:
    data = tmp_path / "claims.csv"
    data.write_text("claim_id,patient\nC-1,Ann\n")
    error = _load(
        tmp_path,
        """
        items_from: claims.csv
        inputs: {site: boston}
        files:
          - path: scans/{claim_id}.pdf
          - path: scans/{claim}-{site}.pdf
        """,
    )
    assert error is not None
    [found] = error.errors
    assert found.field_path == "files[1].path"
    assert "{claim}" in found.message and "claim_id, patient, site" in found.message
    assert "{site}" not in found.message.split("(known")[0]


def test_names_every_static_item_has_are_accepted(tmp_path: Path) -> None:
    assert (
        _load(tmp_path, "items: [{claim_id: C-1}, {claim_id: C-2}]\nfiles: [{path: 'x/{claim_id}.pdf'}]\n")
        is None
    )
    error = _load(tmp_path, "items: [{claim_id: C-1}, {other: 2}]\nfiles: [{path: 'x/{claim_id}.pdf'}]\n")
    assert error is not None and "{claim_id}" in error.errors[0].message


def test_budget_is_a_positive_token_count(tmp_path: Path) -> None:
    assert _load(tmp_path, "budget: {tokens_per_fire: 100000}\n") is None
    error = _load(tmp_path, "budget: {tokens_per_fire: 0}\n")
    assert error is not None and error.errors[0].field_path == "budget.tokens_per_fire"
