"""Files out, end to end against the emulator: each item's output attachments downloaded once into
`<result file stem>/<seq>-<item>/<filename>`, named by the result file's `files` column, with two daemons at
once, and across a SIGKILL mid-download (the `.part` file is downloaded again) or after the file is in place
but not recorded (only recorded)."""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cyberdesk.emulator import EmulatorServer
from cyberdesk_runner.files.outputs import download_round, note_fire_outputs
from cyberdesk_runner.results.files import (
    ResultFileRule,
    outputs_folder,
    result_file_path,
    write_pending_result_files,
)
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.consequences import OutboxRules

from .harness import Harness

RECONCILE = """
    name: reconcile
    workflow: Reconcile invoices
    target: {pool: billing}
    inputs: {month: 2026-11}
    items:
      - {vendor: acme}
      - {vendor: globex}
      - {vendor: initech}
    results:
      path: out/{job}_{fire}.csv
"""
RULES = {"reconcile": ResultFileRule("out/{job}_{fire}.csv", "csv")}

CRASHING_DOWNLOADER = textwrap.dedent("""
    import asyncio, os, signal, sys
    from datetime import UTC, datetime
    import cyberdesk._streaming as streaming
    from cyberdesk import CyberdeskClient
    from cyberdesk_runner.files.outputs import download_round
    from cyberdesk_runner.store import Store
    from cyberdesk_runner.store.files import Files

    url, base_url, api_key, moment = sys.argv[1:5]
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    if moment == "mid-download":
        streaming.os.replace = die           # the body is in its .part file, not yet in place
    else:
        Files.download_done = die            # the file is in place, not yet recorded
    asyncio.run(download_round(Store(url), CyberdeskClient(api_key, base_url=base_url), datetime.now(UTC)))
""")


async def _ended_fire_with_outputs(h: Harness) -> tuple[str, Path]:
    """Run the job; record its output attachments and write its result file, as the daemon's outbox does."""
    h.store.outbox.rules = OutboxRules(result_files={"reconcile": "csv"})
    fire_id = await h.trigger("reconcile")
    await h.run_until_idle()
    path = result_file_path(h.store, fire_id, "reconcile", RULES["reconcile"].template, h.tmp_path)
    assert path is not None
    folder = outputs_folder(path)
    assert await note_fire_outputs(h.store, h.client, fire_id, "reconcile", folder) == 3
    assert (
        await note_fire_outputs(h.store, h.client, fire_id, "reconcile", folder) == 0
    )  # once per attachment
    assert write_pending_result_files(h.store, RULES, h.tmp_path, datetime.now(UTC)) == [(fire_id, "written")]
    return fire_id, path


def _expected(h: Harness, path: Path) -> dict[Path, bytes]:
    """Each item's export as the emulator made it, at the path the result file names."""
    with path.open(newline="") as text:
        rows = list(csv.DictReader(text))
    expected = {}
    for row in rows:
        [run] = [r for r in h.emulator_runs() if str(r.id) == row["run_id"]]
        [attachment] = [h.emulator.attachments.get(a) for a in run.output_attachment_ids]
        relative = row["files"]
        assert relative == f"{path.stem}/{row['seq']}-{row['item']}/{attachment.filename}"
        expected[path.parent / relative] = attachment.content
    return expected


async def test_output_files_are_downloaded_once_next_to_the_result_file_by_two_daemons(
    tmp_path: Path,
) -> None:
    async with Harness(tmp_path, {"reconcile": RECONCILE}) as h:
        _, path = await _ended_fire_with_outputs(h)
        expected = _expected(h, path)
        assert len(expected) == 3 and not any(p.exists() for p in expected)
        other = Store(h.store.url)  # a second daemon on the same store
        try:
            now = datetime.now(UTC)
            rounds = await asyncio.gather(
                download_round(h.store, h.client, now, limit=2), download_round(other, h.client, now, limit=2)
            )
            assert sum(r.downloaded for r in rounds) == 3 and sum(r.bytes for r in rounds) == sum(
                len(b) for b in expected.values()
            )
            for round_ in [
                await download_round(s, h.client, now + timedelta(hours=1)) for s in (h.store, other)
            ]:
                assert round_.downloaded == round_.existed == 0  # done rows are never downloaded again
        finally:
            other.close()
        assert {p: p.read_bytes() for p in expected} == expected
        assert not list(path.parent.rglob("*.part"))


@pytest.mark.parametrize("moment", ["mid-download", "after-rename"])
async def test_output_files_are_downloaded_once_across_a_sigkill(tmp_path: Path, moment: str) -> None:
    async with Harness(tmp_path, {"reconcile": RECONCILE}) as h:
        _, path = await _ended_fire_with_outputs(h)
        expected = _expected(h, path)
        server = EmulatorServer(h.emulator, host="127.0.0.1", port=0).start()
        try:
            crashed = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-c",
                    CRASHING_DOWNLOADER,
                    h.store.url,
                    server.base_url,
                    h.emulator.api_key,
                    moment,
                ],
                check=False,
            )
        finally:
            server.stop()
        assert crashed.returncode == -9
        if moment == "mid-download":
            assert list(path.parent.rglob("*.part")) and not any(p.exists() for p in expected)
        else:
            assert sum(p.exists() for p in expected) >= 1
        # The restart: the dead daemon's claims lapse, and every attachment is settled once.
        later = datetime.now(UTC) + timedelta(minutes=11)
        first = await download_round(h.store, h.client, later)
        assert first.downloaded + first.existed == 3 and first.failed == 0
        if moment == "after-rename":
            assert first.existed >= 1
        again = await download_round(h.store, h.client, later + timedelta(hours=1))
        assert (again.downloaded, again.existed) == (0, 0)
        assert {p: p.read_bytes() for p in expected} == expected
        assert not list(path.parent.rglob("*.part"))
        assert {f.status for f in h.store.files.outputs_of_fire(h.rows("fire")[0]["id"])} == {"done"}


async def test_results_download_fetches_any_fires_files_once_into_a_folder(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cyberdesk_runner.cli import build_app

    async with Harness(
        tmp_path, {"reconcile": RECONCILE.replace("    results:\n      path: out/{job}_{fire}.csv\n", "")}
    ) as h:
        fire_id = await h.trigger("reconcile")
        await h.run_until_idle()
        server = EmulatorServer(h.emulator, host="127.0.0.1", port=0).start()
        config = tmp_path / "config.yaml"
        config.write_text(
            f"cyberdesk: {{api_key: {h.emulator.api_key}, base_url: '{server.base_url}'}}\n"
            f"store: '{h.store.url}'\njobs: jobs\n"
        )
        target = tmp_path / "downloads"

        def results() -> Any:
            args = [
                "results",
                fire_id,
                "--format",
                "jsonl",
                "--download",
                str(target),
                "--config",
                str(config),
            ]
            return CliRunner().invoke(build_app(), args)

        try:
            first = await asyncio.to_thread(results)
            second = await asyncio.to_thread(results)
        finally:
            server.stop()
        assert first.exit_code == 0, first.output
        rows = [json.loads(line) for line in first.stdout.splitlines()]
        paths = [p for row in rows for p in row["files"]]
        assert len(paths) == 3 and all(
            p.startswith(f"downloads/{row['seq']}-") for row, p in zip(rows, paths, strict=True)
        )
        assert all((tmp_path / p).stat().st_size > 0 for p in paths)
        assert "3 file(s) downloaded" in first.stderr and "0 file(s) downloaded" in second.stderr


async def test_the_daemons_outbox_round_writes_the_result_file_and_downloads_its_files(
    tmp_path: Path,
) -> None:
    from cyberdesk_runner.config import load_config
    from cyberdesk_runner.outbox import Outbox

    claims = """
        name: claims
        workflow: Submit insurance claim
        target: {pool: claims-team}
        items: [{claim_id: C-1, patient_name: Ann, amount: "1"}]
        results: {path: "out/{job}_{fire}.csv"}
    """
    async with Harness(tmp_path, {"reconcile": RECONCILE, "claims": claims}) as h:
        config = tmp_path / "config.yaml"
        config.write_text(f"store: '{h.store.url}'\njobs: jobs\n")
        outbox = Outbox(h.runtime, load_config(config), "daemon_test")
        listed: list[str] = []
        real_iter = h.client.run_attachments.iter

        def counting_iter(**kwargs: Any) -> Any:
            listed.append(kwargs["run_id"])
            return real_iter(**kwargs)

        h.client.run_attachments.iter = counting_iter  # type: ignore[method-assign]
        reconcile = await h.trigger("reconcile")
        await h.trigger("claims")
        await h.run_until_idle()
        await outbox.round()
        [path] = (tmp_path / "out").glob(f"reconcile_{reconcile}.csv")
        expected = _expected(h, path)
        assert {p: p.read_bytes() for p in expected} == expected  # downloaded in the same round
        assert len(listed) == 3  # the claims workflow exports nothing: its runs are not listed
        [claims_file] = (tmp_path / "out").glob("claims_*.csv")
        with claims_file.open(newline="") as text:
            assert [row["files"] for row in csv.DictReader(text)] == [""]
        await outbox.aclose()


CHAIN_FIXTURE: dict[str, Any] = {
    "pools": [{"name": "billing"}],
    "machines": [{"name": "desk-1", "pools": ["billing"]}],
    "workflows": [
        {
            "name": "Fetch invoice",
            "prompt": "Fetch the invoice of {vendor}",
            "exports": [{"filename": "report.csv", "content": "fetched,{vendor},{run_id}\n"}],
        },
        {
            "name": "File invoice",
            "prompt": "File the invoice of {vendor}",
            "exports": [{"filename": "report.csv", "content": "filed,{vendor},{run_id}\n"}],
        },
    ],
}
CHAIN = """
    name: invoices
    target: {pool: billing}
    items: [{vendor: acme}]
    steps:
      - workflow: Fetch invoice
        alias: fetch
      - workflow: File invoice
        inputs: {vendor: acme}
    results:
      path: out/{job}_{fire}.csv
"""


async def test_every_step_of_a_chain_has_its_files_downloaded_into_its_own_folder(tmp_path: Path) -> None:
    rules = {"invoices": ResultFileRule("out/{job}_{fire}.csv", "csv")}
    async with Harness(tmp_path, {"invoices": CHAIN}, fixture=CHAIN_FIXTURE) as h:
        h.store.outbox.rules = OutboxRules(result_files={"invoices": "csv"})
        fire_id = await h.trigger("invoices")
        await h.run_until_idle()
        path = result_file_path(h.store, fire_id, "invoices", rules["invoices"].template, h.tmp_path)
        assert path is not None
        assert await note_fire_outputs(h.store, h.client, fire_id, "invoices", outputs_folder(path)) == 2
        assert write_pending_result_files(h.store, rules, h.tmp_path, datetime.now(UTC)) == [
            (fire_id, "written")
        ]
        with path.open(newline="") as text:
            [row] = list(csv.DictReader(text))
        # Both steps export report.csv: each goes under its step's folder (the alias, else the step number).
        item_folder = f"{path.stem}/{row['seq']}-{row['item']}"
        assert row["files"].split(";") == [f"{item_folder}/fetch/report.csv", f"{item_folder}/2/report.csv"]
        done = await download_round(h.store, h.client, datetime.now(UTC))
        assert (done.downloaded, done.failed) == (2, 0)
        [step_runs] = h.store.steps.of_attempts([h.rows("attempt")[0]["id"]]).values()
        fetch_run, file_run = (s["run_id"] for s in step_runs)
        assert (
            path.parent / item_folder / "fetch" / "report.csv"
        ).read_text() == f"fetched,acme,{fetch_run}\n"
        assert (path.parent / item_folder / "2" / "report.csv").read_text() == f"filed,acme,{file_run}\n"


async def test_a_download_outlasting_its_claim_and_taken_over_is_still_settled_once(tmp_path: Path) -> None:
    async with Harness(tmp_path, {"reconcile": RECONCILE}) as h:
        _, path = await _ended_fire_with_outputs(h)
        expected = _expected(h, path)
        written_to: list[Path] = []
        first_started, taken_over = asyncio.Event(), asyncio.Event()
        real_download_to = h.client.run_attachments.download_to

        async def slow_first_daemon(attachment_id: str, target: Path) -> Any:
            written_to.append(target)
            if len(written_to) <= 3:  # the first daemon's three downloads outlast their claims
                if len(written_to) == 3:
                    first_started.set()
                await taken_over.wait()
            return await real_download_to(attachment_id, target)

        h.client.run_attachments.download_to = slow_first_daemon  # type: ignore[method-assign]
        other = Store(h.store.url)
        try:
            now = datetime.now(UTC)
            first = asyncio.create_task(download_round(h.store, h.client, now))
            await asyncio.wait_for(first_started.wait(), 60)
            # The second daemon's clock is past the first's lease: it takes every row over and downloads them.
            second = await download_round(other, h.client, now + timedelta(minutes=11))
            taken_over.set()
            slow = await asyncio.wait_for(first, 60)
        finally:
            other.close()
        assert (second.downloaded, second.failed) == (3, 0)
        assert (slow.downloaded, slow.existed, slow.failed) == (0, 3, 0)  # settled already: counted once
        assert len(set(written_to)) == 6 and not set(written_to) & set(expected)  # each its own staging file
        assert {p: p.read_bytes() for p in expected} == expected
        assert {p for p in path.parent.rglob("*") if p.is_file()} == {path, *expected}  # no leftovers
