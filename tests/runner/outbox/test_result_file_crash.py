"""A result file is written once across a SIGKILL before writing (written after the restart) and after writing
but before recording it (not rewritten after the restart)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cyberdesk_runner.results.files import ResultFileRule, write_pending_result_files
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.consequences import OutboxRules
from cyberdesk_runner.store.records import JobDefinition, NewFire

RULES = {"claims": ResultFileRule("out/{job}_{fire}.csv", "csv")}

# Runs the writer in a process that SIGKILLs itself at the chosen moment.
CRASHING_WRITER = textwrap.dedent("""
    import os, signal, sys
    from datetime import UTC, datetime
    from pathlib import Path
    import cyberdesk_runner.results.files as files
    from cyberdesk_runner.store import Store
    from cyberdesk_runner.store.outbox import Outbox

    url, base, moment = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    if moment == "before":
        files.os.link = die                      # killed with the table in its temp file, not yet in place
    else:
        Outbox.result_file_settled = die         # killed with the file in place, not yet recorded
    files.write_pending_result_files(
        Store(url), {"claims": files.ResultFileRule("out/{job}_{fire}.csv", "csv")}, base, datetime.now(UTC)
    )
""")


def _ended_fire(url: str) -> str:
    store = Store(url)
    store.upgrade()
    store.outbox.rules = OutboxRules(result_files={"claims": "csv"})
    now = datetime.now(UTC)
    store.jobs.sync([JobDefinition("claims", "h", {"name": "claims"}, "claims.yaml")], now)
    fire_id = store.fires.insert(NewFire("claims", "manual", None), [], now)  # no items: ends at once
    assert fire_id is not None
    store.close()
    return fire_id


@pytest.mark.parametrize("moment", ["before", "after"])
def test_result_file_is_written_once_across_a_sigkill(tmp_path: Path, moment: str) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    fire_id = _ended_fire(url)
    target = tmp_path / "out" / f"claims_{fire_id}.csv"
    crashed = subprocess.run([sys.executable, "-c", CRASHING_WRITER, url, str(tmp_path), moment], check=False)
    assert crashed.returncode == -9
    assert target.exists() == (moment == "after")
    before = target.stat().st_mtime_ns if target.exists() else None

    store = Store(url)  # the restart
    try:
        assert store.outbox.result_file(fire_id) == ("pending", None)
        status = "written" if moment == "before" else "existed"
        assert write_pending_result_files(store, RULES, tmp_path, datetime.now(UTC)) == [(fire_id, status)]
        assert store.outbox.result_file(fire_id) == (status, str(target))
        assert write_pending_result_files(store, RULES, tmp_path, datetime.now(UTC)) == []  # settled: once
    finally:
        store.close()
    assert target.read_text().startswith("item,seq,status")
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp file left behind
    if before is not None:
        assert target.stat().st_mtime_ns == before  # not rewritten
    assert os.stat(target).st_nlink == 1
