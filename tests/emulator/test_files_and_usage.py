"""Run attachments and usage in the emulator: file_inputs become input attachments (checked: base64, plain names,
sizes), exporting workflows leave a deterministic file per run, every ended run carries usage_metadata, and
usage.aggregate sums them. Driven through our SDK over the in-process app."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cyberdesk import (
    AttachmentType,
    ChainStep,
    CyberdeskClient,
    FileInput,
    RunCreate,
    RunRetry,
    UsageMode,
    WorkflowChainCreate,
)
from cyberdesk.emulator import Emulator, FixtureError, create_app, load_fixture

from .conftest import CLAIM_INPUTS, START, wf

PDF = b"%PDF-1.4 scanned claim\n%%EOF\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
async def sdk(em: Emulator) -> AsyncIterator[CyberdeskClient]:
    transport = httpx.ASGITransport(app=create_app(em))
    client = CyberdeskClient(em.api_key, base_url="http://emulator", async_transport=transport)
    yield client
    await client.aclose()


async def test_file_inputs_become_input_attachments_with_their_bytes(
    em: Emulator, sdk: CyberdeskClient, tmp_path: Path
) -> None:
    files = [
        FileInput(
            filename="claim.pdf", content=b64(PDF), target_path="C:\\Claims", cleanup_imports_after_run=True
        )
    ]
    run = (
        await sdk.runs.create(RunCreate(workflow_id=wf(em), input_values=CLAIM_INPUTS, file_inputs=files))
    ).unwrap()
    assert run.input_attachment_ids and len(run.input_attachment_ids) == 1
    page = (await sdk.run_attachments.list(run_id=run.id, attachment_type=AttachmentType.INPUT)).unwrap()
    [attachment] = page.items
    assert (attachment.filename, attachment.size_bytes, attachment.content_type) == (
        "claim.pdf",
        len(PDF),
        "application/pdf",
    )
    assert (attachment.target_path, attachment.cleanup_imports_after_run) == ("C:\\Claims", True)
    assert (await sdk.run_attachments.download(attachment.id)).unwrap() == PDF
    saved = (await sdk.run_attachments.save_to_file(attachment.id, tmp_path)).unwrap()
    assert saved.path.read_bytes() == PDF


@pytest.mark.parametrize(
    ("file", "where"),
    [
        ({"filename": "a.pdf", "content": "not base64!"}, "content"),
        ({"filename": "../a.pdf", "content": "aGk="}, "filename"),
        ({"filename": "", "content": "aGk="}, "filename"),
    ],
)
async def test_bad_file_inputs_are_422s_naming_the_field(
    em: Emulator, file: dict[str, str], where: str
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(em)),
        base_url="http://emulator",
        headers={"Authorization": f"Bearer {em.api_key}"},
    ) as client:
        response = await client.post("/v1/runs", json={"workflow_id": wf(em), "file_inputs": [file]})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "file_inputs", 0, where]
    assert em.stats_snapshot()["runs"]["created"] == 0


async def test_a_422_never_echoes_file_contents_or_sensitive_values(em: Emulator) -> None:
    secret = "SSN 123-45-6789 of Ann Lee!"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(em)),
        base_url="http://emulator",
        headers={"Authorization": f"Bearer {em.api_key}"},
    ) as client:
        bad_content = {"workflow_id": wf(em), "file_inputs": [{"filename": "a.pdf", "content": secret}]}
        # A missing field's error would otherwise carry the whole body, file contents included.
        missing_workflow = {"file_inputs": [{"filename": "a.pdf", "content": b64(secret.encode())}]}
        bad_sensitive = {"workflow_id": wf(em), "sensitive_input_values": secret}
        responses = [
            await client.post("/v1/runs", json=body)
            for body in (bad_content, missing_workflow, bad_sensitive)
        ]
    assert [r.status_code for r in responses] == [422, 422, 422]
    for response in responses:
        assert secret not in response.text and b64(secret.encode()) not in response.text
    locs = [[e["loc"] for e in r.json()["detail"]] for r in responses]
    assert locs == [
        [["body", "file_inputs", 0, "content"]],
        [["body", "workflow_id"]],
        [["body", "sensitive_input_values"]],
    ]
    assert "base64" in responses[0].json()["detail"][0]["msg"]


async def test_a_file_over_the_limit_is_refused(em: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cyberdesk.emulator.schemas.MAX_FILE_INPUT_BYTES", 8)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(em)),
        base_url="http://emulator",
        headers={"Authorization": f"Bearer {em.api_key}"},
    ) as client:
        body = {"workflow_id": wf(em), "file_inputs": [{"filename": "big.bin", "content": b64(b"x" * 64)}]}
        response = await client.post("/v1/runs", json=body)
    assert response.status_code == 422 and "larger than" in response.text


async def test_an_exporting_workflow_leaves_one_deterministic_csv_per_successful_run(
    em: Emulator, sdk: CyberdeskClient, tmp_path: Path
) -> None:
    workflow = em.add_workflow(
        "Export claims", "Export {claim_id}", failure_rate=0.0, includes_file_exports=True
    )
    run = (
        await sdk.runs.create(RunCreate(workflow_id=workflow.id, input_values={"claim_id": "C-9"}))
    ).unwrap()
    em.run_until_idle()
    done = (await sdk.runs.get(run.id)).unwrap()
    assert done.status == "success" and done.output_attachment_ids and len(done.output_attachment_ids) == 1
    [out] = (
        (await sdk.run_attachments.list(run_id=run.id, attachment_type=AttachmentType.OUTPUT)).unwrap().items
    )
    saved = (await sdk.run_attachments.download_to(out.id, tmp_path / "out.csv")).unwrap()
    text = saved.path.read_text()
    assert text == f"run_id,workflow,input,value\n{run.id},Export claims,claim_id,C-9\n"
    assert saved.size == out.size_bytes
    # A retry clears the outputs and exports again.
    (await sdk.runs.retry(run.id, RunRetry())).unwrap()
    assert em.run(str(run.id)).output_attachment_ids is None and str(out.id) not in em.attachments.by_id


async def test_fixture_exports_and_chain_shared_files(em: Emulator, sdk: CyberdeskClient) -> None:
    workflow = em.add_workflow(
        "Invoice",
        "Find {invoice}",
        failure_rate=0.0,
        includes_file_exports=True,
        exports=[("invoice-{invoice}.txt", "invoice {invoice} of run {run_id}")],
    )
    chain = WorkflowChainCreate(
        steps=[ChainStep(workflow_id=workflow.id, inputs={"invoice": "7"})],
        shared_file_inputs=[FileInput(filename="in.txt", content=b64(b"hi"))],
    )
    [run_id] = (await sdk.runs.chain(chain)).unwrap().run_ids
    em.run_until_idle()
    run = em.run(str(run_id))
    [inp] = run.input_attachment_ids or []
    assert em.attachments.by_id[inp].content == b"hi"
    [out] = run.output_attachment_ids or []
    assert em.attachments.by_id[out].filename == "invoice-7.txt"
    assert em.attachments.by_id[out].content == f"invoice 7 of run {run_id}".encode()


def test_a_fixture_sets_what_a_workflow_exports(make_emulator: Any) -> None:
    fixture = {
        "machines": [{"name": "d1"}],
        "workflows": [
            {
                "name": "Invoice",
                "prompt": "Find {invoice}",
                "failure_rate": 0,
                "exports": [{"filename": "invoice-{invoice}.txt", "content": "invoice {invoice} ({run_id})"}],
            },
            {"name": "Report", "prompt": "Report", "failure_rate": 0, "includes_file_exports": True},
            {"name": "Plain", "prompt": "Plain", "failure_rate": 0},
        ],
    }
    em = make_emulator(fixture=fixture)
    runs = {
        name: em.create_run(em.workflow(name).id, input_values={"invoice": "7"})
        for name in ("Invoice", "Report", "Plain")
    }
    em.run_until_idle()
    files = {
        name: [em.attachments.get(a) for a in run.output_attachment_ids or ()] for name, run in runs.items()
    }
    [invoice] = files["Invoice"]
    assert (invoice.filename, invoice.content) == (
        "invoice-7.txt",
        f"invoice 7 ({runs['Invoice'].id})".encode(),
    )
    [report] = files["Report"]
    assert report.filename.endswith(".csv") and runs["Report"].id.encode() in report.content
    assert files["Plain"] == []


@pytest.mark.parametrize(
    ("exports", "problem"),
    [
        ("report.csv", "must be a list"),
        ([{"filename": "r.csv"}], "exports[0]: needs exactly `filename` and `content`"),
        ([{"filename": "out/r.csv", "content": "x"}], "exports[0].filename: must be a plain file name"),
    ],
)
def test_a_bad_fixture_export_is_refused_saying_where(exports: Any, problem: str) -> None:
    fixture = {"workflows": [{"name": "W", "prompt": "p", "exports": exports}]}
    with pytest.raises(FixtureError, match=re.escape(problem)) as raised:
        load_fixture(fixture)
    assert "workflows[0]" in str(raised.value)


async def test_usage_metadata_per_run_and_the_aggregate(em: Emulator, sdk: CyberdeskClient) -> None:
    workflow = em.add_workflow("Steady", "Do {a}", failure_rate=0.0)
    ids = [
        (await sdk.runs.create(RunCreate(workflow_id=workflow.id, input_values={"a": str(i), "b": "x"})))
        .unwrap()
        .id
        for i in range(3)
    ]
    em.run_until_idle()
    usages = [(await sdk.runs.get(i)).unwrap().usage_metadata for i in ids]
    for usage in usages:
        assert usage is not None
        assert (usage["total_agentic_steps"], usage["total_tokens"], usage["billed_seconds"]) == (
            5,
            6000,
            100,
        )
    period = (datetime.fromtimestamp(START, UTC), datetime.fromtimestamp(START + 3600, UTC))
    total = (await sdk.usage.aggregate(*period)).unwrap()
    assert (total.total_agentic_steps, total.total_cached_steps, total.runs_counted) == (15, 0, 3)
    billed = (await sdk.usage.aggregate(*period, mode=UsageMode.BILLED)).unwrap()
    assert billed.mode == "billed" and billed.total_agentic_steps == 15
    before = (
        await sdk.usage.aggregate(datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 2, 1, tzinfo=UTC))
    ).unwrap()
    assert before.runs_counted == 0
