"""Files in, end to end against the emulator: each item's file attached to its run, a missing file failing only
its item before any create call, and a create call repeated after a crash sending the same bytes (or failing
the attempt when the file changed meanwhile)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from .harness import Harness

CLAIMS = """
    name: claims
    workflow: Submit insurance claim
    target: {pool: claims-team}
    inputs: {patient_name: Ann, amount: "10"}
    items:
      - {claim_id: C-1}
      - {claim_id: C-2}
      - {claim_id: C-3}
    files:
      - path: data/claims/{claim_id}.pdf
        target_path: C:\\Claims\\Inbox
        cleanup: true
"""


def _write_claims(h: Harness, *ids: str) -> dict[str, bytes]:
    folder = h.jobs_dir / "data" / "claims"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for claim_id in ids:
        written[claim_id] = f"%PDF-1.4 claim {claim_id}\n".encode() + bytes(range(256)) * 40
        (folder / f"{claim_id}.pdf").write_bytes(written[claim_id])
    return written


def _inputs_of(h: Harness, run: Any) -> list[Any]:
    return [h.emulator.attachments.get(a) for a in run.input_attachment_ids or []]


async def test_each_run_gets_its_items_file_and_the_store_keeps_only_path_size_and_hash(
    tmp_path: Path,
) -> None:
    async with Harness(tmp_path, {"claims": CLAIMS}) as h:
        files = _write_claims(h, "C-1", "C-2", "C-3")
        await h.trigger("claims")
        await h.run_until_idle()
        runs = h.emulator_runs()
        assert len(runs) == 3
        for run in runs:
            [attachment] = _inputs_of(h, run)
            claim_id = run.input_values["claim_id"]
            assert attachment.content == files[claim_id]
            assert attachment.filename == f"{claim_id}.pdf"
            assert (attachment.target_path, attachment.cleanup_imports_after_run) == (
                "C:\\Claims\\Inbox",
                True,
            )
        recorded = h.rows("attempt_file")
        assert sorted(r["sha256"] for r in recorded) == sorted(
            hashlib.sha256(b).hexdigest() for b in files.values()
        )
        assert {r["size"] for r in recorded} == {len(files["C-1"])}
        assert set(recorded[0]) >= {"path", "size", "sha256"} and "content" not in recorded[0]


async def test_a_missing_file_fails_its_item_before_any_create_call_and_the_others_go_on(
    tmp_path: Path,
) -> None:
    async with Harness(tmp_path, {"claims": CLAIMS}) as h:
        _write_claims(h, "C-1", "C-3")
        await h.trigger("claims")
        await h.run_until_idle()
        assert sorted(r.input_values["claim_id"] for r in h.emulator_runs()) == ["C-1", "C-3"]
        items = {i["inputs"]["claim_id"]: i for i in h.rows("item")}
        assert items["C-1"]["status"] == items["C-3"]["status"] == "succeeded"
        assert items["C-2"]["status"] == "failed"
        assert "file not found" in items["C-2"]["last_error"] and "C-2.pdf" in items["C-2"]["last_error"]
        [refused] = [a for a in h.rows("attempt") if a["item_id"] == items["C-2"]["id"]]
        assert refused["run_id"] is None and refused["status"] == "rejected"


async def test_an_input_value_that_would_leave_the_folder_fails_its_item(tmp_path: Path) -> None:
    job = CLAIMS.replace("{claim_id: C-3}", '{claim_id: "../../secrets"}')
    async with Harness(tmp_path, {"claims": job}) as h:
        _write_claims(h, "C-1", "C-2")
        await h.trigger("claims")
        await h.run_until_idle()
        assert len(h.emulator_runs()) == 2
        [failed] = [i for i in h.rows("item") if i["status"] == "failed"]
        assert "path separator" in failed["last_error"]


class _CrashOnFirstCreate:
    """The first create call dies: before it is sent, or after the API made the run (its answer lost)."""

    def __init__(self, h: Harness, *, sent: bool) -> None:
        self.real = h.client.runs.create
        self.sent = sent
        self.calls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            if self.sent:
                await self.real(*args, **kwargs)
            raise RuntimeError("the daemon died here")
        return await self.real(*args, **kwargs)


@pytest.mark.parametrize("sent", [False, True], ids=["before-send", "after-send"])
async def test_a_create_repeated_after_a_crash_sends_the_same_bytes(tmp_path: Path, sent: bool) -> None:
    job = CLAIMS.replace("      - {claim_id: C-2}\n      - {claim_id: C-3}\n", "")
    async with Harness(tmp_path, {"claims": job}) as h:
        files = _write_claims(h, "C-1")
        crash = _CrashOnFirstCreate(h, sent=sent)
        h.client.runs.create = crash  # type: ignore[method-assign]
        await h.trigger("claims")
        await h.cycle()
        [attempt] = h.rows("attempt")
        assert attempt["status"] == "creating" and len(h.rows("attempt_file")) == 1
        await h.advance(31)  # the claim lapses: the call is repeated with the same key
        await h.run_until_idle()
        assert crash.calls == 2
        [run] = h.emulator_runs()
        [attachment] = _inputs_of(h, run)
        assert attachment.content == files["C-1"]
        [attempt] = h.rows("attempt")
        assert attempt["status"] == "success" and attempt["run_id"] == str(run.id)


async def test_a_file_changed_between_record_and_repeat_fails_the_attempt_instead_of_sending(
    tmp_path: Path,
) -> None:
    job = CLAIMS.replace("      - {claim_id: C-2}\n      - {claim_id: C-3}\n", "")
    async with Harness(tmp_path, {"claims": job}) as h:
        _write_claims(h, "C-1")
        h.client.runs.create = _CrashOnFirstCreate(h, sent=False)  # type: ignore[method-assign]
        await h.trigger("claims")
        await h.cycle()
        (h.jobs_dir / "data" / "claims" / "C-1.pdf").write_bytes(b"another scan")
        await h.advance(31)
        await h.run_until_idle()
        assert h.emulator_runs() == []
        [attempt] = h.rows("attempt")
        assert attempt["status"] == "rejected"
        assert "changed since this attempt's first create call" in attempt["error"][0]


async def test_a_multi_step_job_sends_its_files_once_as_the_chains_shared_files(tmp_path: Path) -> None:
    fixture = {
        "pools": [{"name": "clinic"}],
        "machines": [{"name": f"desk-{i}", "pools": ["clinic"]} for i in range(1, 3)],
        "workflows": [
            {"name": "Upload", "prompt": "Upload {claim_id}"},
            {"name": "Submit", "prompt": "Submit"},
        ],
    }
    job = """
        name: claims
        target: {pool: clinic}
        items: [{claim_id: C-1}, {claim_id: C-2}]
        files: [{path: "data/claims/{claim_id}.pdf"}]
        steps:
          - workflow: Upload
          - workflow: Submit
    """
    async with Harness(tmp_path, {"claims": job}, fixture=fixture) as h:
        files = _write_claims(h, "C-1")
        await h.trigger("claims")
        await h.run_until_idle()
        runs = h.emulator_runs()
        assert len(runs) == 2 and {r.input_values["claim_id"] for r in runs} == {
            "C-1"
        }  # one chain of 2 steps
        for run in runs:  # the emulator hands the chain's shared files to each of its runs
            assert [a.content for a in _inputs_of(h, run)] == [files["C-1"]]
        items = {i["inputs"]["claim_id"]: i for i in h.rows("item")}
        assert items["C-1"]["status"] == "succeeded"
        assert items["C-2"]["status"] == "failed" and "file not found" in items["C-2"]["last_error"]
