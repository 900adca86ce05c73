"""`cyberdesk-runner db upgrade` and `db current`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cyberdesk_runner.cli import build_app
from cyberdesk_runner.store import Store, migrations


def _config(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f'store: "{store_url}"\njobs: jobs\n')
    return path


def _db(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), ["db", *args])
    return result.exit_code, result.output


def test_db_commands_on_sqlite(tmp_path: Path) -> None:
    config = str(_config(tmp_path, "sqlite:///store.sqlite"))
    code, output = _db("current", "--config", config)
    assert code == 0 and "no store yet" in output
    assert not (tmp_path / "store.sqlite").exists()  # looking does not create it
    code, output = _db("upgrade", "--config", config)
    head = migrations.head_revision()
    assert code == 0 and f"upgraded from an empty database to {head}" in output
    code, output = _db("upgrade", "--config", config)
    assert code == 0 and "nothing to do" in output
    code, output = _db("current", "--config", config)
    assert code == 0 and f"revision {head} (head)" in output


@pytest.mark.postgres
def test_db_commands_on_postgres(tmp_path: Path, pg_schema: Callable[[], str]) -> None:
    url = pg_schema()
    config = str(_config(tmp_path, url))
    code, output = _db("current", "--config", config)
    assert code == 0 and "no schema yet" in output
    store = Store(url)
    migrations.upgrade(store.engine, "0001")
    code, output = _db("current", "--config", config)
    assert code == 0 and "revision 0001; this version's head is" in output
    code, output = _db("upgrade", "--config", config)
    assert code == 0 and f"upgraded from revision 0001 to {migrations.head_revision()}" in output
    assert store.schema_revision()[0] == migrations.head_revision()
    store.close()


def test_db_upgrade_reports_an_unreachable_store(tmp_path: Path) -> None:
    config = str(_config(tmp_path, "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"))
    code, output = _db("upgrade", "--config", config)
    assert code == 4 and "cannot use the store" in output
