"""Migrations: the same Alembic revisions on SQLite and PostgreSQL; a store at the previous revision (or made
before migrations) upgrades with its data; daemons upgrading at once; the revisions ship in the package."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from importlib import resources
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from store_helpers import LEASE, T0, Chooser, at, policy, run, together

from cyberdesk_runner.store import Store, migrations
from cyberdesk_runner.store.records import Assignment, JobDefinition, NewFire, NewItem
from cyberdesk_runner.store.views import AttemptQuery


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: no tables, no revision."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.sqlite'}"
        return
    make: Callable[[], str] = request.getfixturevalue("pg_schema")
    yield make()


def _diff(store: Store) -> list[object]:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, migrations.target_metadata()))


def test_upgrade_makes_the_schema_of_tables_py(blank_url: str) -> None:
    store = Store(blank_url)
    try:
        assert store.schema_revision() == (None, migrations.head_revision())
        store.upgrade()
        assert store.schema_revision() == (migrations.head_revision(), migrations.head_revision())
        assert _diff(store) == []
        store.upgrade()  # at head: nothing to do
        assert store.is_initialised()
    finally:
        store.close()


def test_tables_created_without_the_migrations_have_the_active_desktop_index_too(tmp_path: Path) -> None:
    # Declared apart from the attempt table's other indexes (tables.py says why), it joins the table before its
    # DDL: in a process of its own, where nothing declared it yet.
    url = f"sqlite:///{tmp_path / 'made.sqlite'}"
    program = (
        "import sys, sqlalchemy as sa\n"
        "from sqlmodel import SQLModel\n"
        "import cyberdesk_runner.store.tables\n"
        "SQLModel.metadata.create_all(sa.create_engine(sys.argv[1]))\n"
    )
    subprocess.run([sys.executable, "-c", program, url], check=True, timeout=120)
    engine = sa.create_engine(url)
    indexes = {index["name"]: index for index in sa.inspect(engine).get_indexes("attempt")}
    engine.dispose()
    assert indexes["ux_attempt_active_desktop"]["unique"]


_OLD_ROWS = {
    "job": {
        "name": "a",
        "definition_hash": "h",
        "definition": {"name": "a"},
        "source_path": "/a.yaml",
        "paused": False,
        "loaded_at": T0,
    },
    "fire": {
        "id": "fire_1",
        "job_name": "a",
        "trigger": "manual",
        "dedup_key": "fire_1",
        "created_at": T0,
        "status": "running",
        "items_total": 2,
    },
    "item": [
        {
            "id": "item_1",
            "fire_id": "fire_1",
            "job_name": "a",
            "seq": 0,
            "inputs": {"n": 0},
            "status": "running",
            "priority": False,
            "attempts": 1,
            "next_attempt_at": T0,
            "created_at": T0,
            "cancel_requested": False,
        },
        {
            "id": "item_2",
            "fire_id": "fire_1",
            "job_name": "a",
            "seq": 1,
            "inputs": {"n": 1},
            "status": "pending",
            "priority": False,
            "attempts": 0,
            "next_attempt_at": T0,
            "created_at": T0,
            "cancel_requested": False,
        },
    ],
    # Made by a daemon of the previous version, which died mid-create: no owner column then.
    "attempt": {
        "id": "att_1",
        "item_id": "item_1",
        "fire_id": "fire_1",
        "job_name": "a",
        "number": 1,
        "idempotency_key": "key-1",
        "workflow_id": "wf-1",
        "machine_id": "m-01",
        "status": "creating",
        "created_at": T0,
        "updated_at": T0,
        "deadline_at": at(3600),
        "retry_create_at": at(30),
        "create_tries": 0,
        "cancel_requested": False,
    },
    "event": {"at": T0, "kind": "fire_started", "job_name": "a", "fire_id": "fire_1"},
}


def _insert_old_rows(engine: sa.Engine) -> None:
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.begin() as conn:
        for table, rows in _OLD_ROWS.items():
            conn.execute(sa.insert(metadata.tables[table]), rows if isinstance(rows, list) else [rows])


def _check_upgraded(store: Store) -> None:
    assert store.schema_revision()[0] == migrations.head_revision()
    assert _diff(store) == []
    # The data survived...
    assert [j.name for j in store.jobs.all()] == ["a"]
    assert store.counts.work().pending_items == 1 and store.counts.work().creating_attempts == 1
    # ...and works with this version: the dead daemon's create is settled (same key) and claimed by us.
    assert store.dispatch.attempts_to_settle(at(29), lease=LEASE) == []
    (settle,) = store.dispatch.attempts_to_settle(at(30), lease=LEASE)
    assert (settle.id, settle.idempotency_key, settle.inputs) == ("att_1", "key-1", {"n": 0})
    assert store.dispatch.renew_creating(at(40), LEASE, ["att_1"]) == 1
    store.tracking.record_created([("att_1", run("r-1", "running", "create"))], at(41), policy())
    (new,) = store.dispatch.assign(at(41), Chooser(now=at(41)), lease=LEASE)
    assert (new.item_id, new.machine_id) == ("item_2", "m-02")  # m-01 is busy with the old attempt's run
    store.tracking.record_created([(new.id, run("r-2", "success", "create"))], at(42), policy())
    store.tracking.apply_observations([run("r-1", "success")], at(43), policy())
    assert store.fires.of_job("a")[0].status == "succeeded"
    assert store.retention.purge(at(43) + timedelta(days=1), batch=10) == 1


def test_a_store_at_the_previous_revision_upgrades_with_its_data(blank_url: str) -> None:
    store = Store(blank_url)
    try:
        migrations.upgrade(store.engine, "0001")
        assert store.schema_revision()[0] == "0001"
        _insert_old_rows(store.engine)
        store.upgrade()
        _check_upgraded(store)
    finally:
        store.close()


def test_a_store_at_0009_upgrades_to_the_fire_page_indexes_with_its_data(blank_url: str) -> None:
    """v0010 (issue 18): a fire's items, runs and events read in index order, from a store the previous version
    filled; SQLite's plan walks the new indexes instead of sorting the whole fire (a fire's items by v0011's
    unique (fire_id, seq), which took the place of v0010's (fire_id, seq, id))."""
    store = Store(blank_url)
    try:
        migrations.upgrade(store.engine, "0009")
        store.jobs.sync([JobDefinition("a", "h", {}, "/a.yaml")], T0)
        fire_id = store.fires.insert(NewFire("a", "manual", None), [NewItem({"n": n}) for n in range(5)], T0)
        assert fire_id is not None
        store.upgrade()
        assert store.schema_revision()[0] == migrations.head_revision() and _diff(store) == []
        store.dispatch.assign(
            T0, Chooser(now=T0), lease=LEASE
        )  # (this version's dispatch reads 0012's columns)
        assert [i.inputs["n"] for i in store.queries.item_views(fire_id, limit=2, offset=2)] == [2, 3]
        runs = store.queries.attempt_views(AttemptQuery(fire_id=fire_id, limit=100))
        assert len(runs) == 5 and {r.fire_id for r in runs} == {fire_id}
        events = store.queries.event_page(fire_id=fire_id, limit=3)
        assert events.total == 6 and [e.kind for e in events.events] == ["attempt_created"] * 3
        if not store.is_postgres:  # PostgreSQL picks its plan by table size: a handful of rows say nothing
            with store.engine.connect() as conn:
                plans = {
                    index: " ".join(
                        str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", (fire_id,))
                    )
                    for index, sql in (
                        ("ux_item_fire_seq", "SELECT * FROM item WHERE fire_id = ? ORDER BY seq, id LIMIT 2"),
                        (
                            "ix_attempt_fire_created",
                            "SELECT * FROM attempt WHERE fire_id = ? ORDER BY created_at DESC, id DESC LIMIT 2",
                        ),
                        (
                            "ix_event_fire_id",
                            "SELECT * FROM event WHERE fire_id = ? ORDER BY id DESC LIMIT 2",
                        ),
                    )
                }
            for index, plan in plans.items():
                assert index in plan and "TEMP B-TREE" not in plan, plan
    finally:
        store.close()


def test_a_store_made_before_migrations_is_adopted(blank_url: str) -> None:
    store = Store(blank_url)
    try:
        migrations.upgrade(store.engine, "0001")
        with store.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE alembic_version"))  # what create_all left: tables, no revision
        _insert_old_rows(store.engine)
        assert store.schema_revision()[0] is None and store.is_initialised()
        store.upgrade()
        _check_upgraded(store)
    finally:
        store.close()


def test_a_store_at_head_is_opened_without_loading_alembic(blank_url: str) -> None:
    """A daemon's usual start (its store already at head) reads the version row itself: Alembic, with the Mako
    and Pygments it brings, stays out of the daemon's memory (about 10 MB). A store behind is upgraded as usual."""
    probe = (
        "import sys; from cyberdesk_runner.store import Store; store = Store(sys.argv[1]); store.upgrade(); "
        "print(store.schema_revision()[0], 'alembic' in sys.modules); store.close()"
    )

    def open_in_a_new_process() -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe, blank_url], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    head = migrations.head_revision()
    assert open_in_a_new_process() == f"{head} True"  # blank: migrated, with Alembic
    assert open_in_a_new_process() == f"{head} False"  # at head: nothing to do, no Alembic
    store = Store(blank_url)
    try:
        with store.engine.begin() as conn:
            command.downgrade(migrations.alembic_config(conn), "0008")
    finally:
        store.close()
    assert open_in_a_new_process() == f"{head} True"  # one revision behind: upgraded again


def test_daemons_upgrading_at_once(blank_url: str) -> None:
    stores = [Store(blank_url) for _ in range(4)]
    try:
        _, errors = together([s.upgrade for s in stores])
        assert errors == []
        assert stores[0].schema_revision()[0] == migrations.head_revision()
        assert _diff(stores[0]) == []
    finally:
        for store in stores:
            store.close()


def test_downgrade_to_the_baseline_and_back(blank_url: str) -> None:
    store = Store(blank_url)
    try:
        store.upgrade()
        with store.engine.begin() as conn:
            command.downgrade(migrations.alembic_config(conn), "0001")
        assert store.schema_revision()[0] == "0001"
        store.upgrade()
        assert _diff(store) == []
        # SQLite rebuilt the attempt table on the way down: the partial unique index still guards desktops.
        store.jobs.sync([JobDefinition("a", "h", {}, "/a.yaml")], T0)
        store.fires.insert(NewFire("a", "manual", None), [NewItem({}), NewItem({})], T0)
        with pytest.raises(sa.exc.IntegrityError):
            store.dispatch.assign(
                T0, lambda view: [Assignment(d.id, "wf", "m-01", None, at(60)) for d in view.due], lease=LEASE
            )
    finally:
        store.close()


def test_the_revisions_ship_inside_the_package() -> None:
    """Whatever installed `cyberdesk_runner` (CI installs it with `pip install .`, not editable), the
    migrations come with it: Alembic finds every revision from the package's own folder."""
    folder = resources.files("cyberdesk_runner.store.migrations")
    names = {entry.name for entry in folder.iterdir()}
    assert {"env.py", "script.py.mako", "versions"} <= names
    versions = {entry.name for entry in folder.joinpath("versions").iterdir()}
    assert {"v0001_initial.py", "v0002_scaleout.py"} <= versions
    assert Path(str(folder)) == migrations.SCRIPT_LOCATION
    script = ScriptDirectory.from_config(migrations.alembic_config())
    chain = [r.revision for r in script.walk_revisions()]  # newest first, one line of history
    assert chain[-2:] == ["0002", "0001"] and chain[0] == migrations.head_revision()
    assert len(script.get_heads()) == 1
