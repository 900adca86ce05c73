"""Statements of the hot paths run on the DB-API cursor (`store.prepared`): they write exactly what Core writes,
read back what Core reads, take any number of ids, and raise database errors as Core does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from store_helpers import LEASE, T0, Chooser, add_jobs, manual_fire

from cyberdesk_runner.store import Store
from cyberdesk_runner.store.prepared import Prepared, ids_in
from cyberdesk_runner.store.statements import NEW_EVENT
from cyberdesk_runner.store.tables import attempt_t, event_t, item_t
from cyberdesk_runner.store.types import UTCDateTime

#: 12:00:00.000120 UTC, given in another zone.
_AT = datetime(2026, 6, 1, 14, 0, 0, 120, tzinfo=timezone(timedelta(hours=2)))


def _event(kind: str | None, data: dict[str, object] | None) -> dict[str, object]:
    return {
        "at": _AT,
        "kind": kind,
        "job_name": "a",
        "fire_id": None,
        "item_id": None,
        "attempt_id": None,
        "run_id": None,
        "data": data,
    }


def test_rows_go_in_as_core_writes_them(store: Store) -> None:
    """Times (UTC, as the dialect stores them), JSON (None as JSON null) and NULLs, compared as stored."""
    prepared = Prepared(sa.insert(event_t), keys=NEW_EVENT)
    with store.core.write() as conn:
        conn.execute(sa.insert(event_t), [_event("by_core", {"n": 1, "s": "é"}), _event("by_core", None)])
        prepared.many(conn, [_event("prepared", {"n": 1, "s": "é"}), _event("prepared", None)])
    as_stored = sa.select(
        sa.cast(event_t.c.at, sa.String), sa.cast(event_t.c.data, sa.String), event_t.c.data.is_(None)
    ).order_by(event_t.c.id)
    with store.core.read() as conn:
        rows = conn.execute(as_stored.where(event_t.c.kind == "by_core")).all()
        again = conn.execute(as_stored.where(event_t.c.kind == "prepared")).all()
    assert rows == again and len(rows) == 2


def test_literals_between_parameters_and_nulls_bind_as_core_binds_them(store: Store) -> None:
    """Literal values (`one_of`) between the caller's parameters keep their places, and None in a column with a
    bind processor (JSON null, a time's NULL) is written as Core writes it, beside values that are not None."""
    from cyberdesk_runner.store.prepared import one_of

    update = (
        sa.update(event_t)
        .where(
            event_t.c.job_name == sa.bindparam("b_job"),
            one_of(event_t.c.kind, ["k1", "k2"]),
            event_t.c.run_id == sa.bindparam("b_run"),
        )
        .values(data=sa.bindparam("b_data"), at=sa.bindparam("b_at"))
    )
    prepared = Prepared(update)
    rows = [
        {**_event(kind, {"before": 1}), "job_name": job, "run_id": run}
        for job in ("core", "prepared")
        for kind, run in (("k1", "r1"), ("k2", "r2"), ("k3", "r1"))
    ]
    given = [({"b_data": {"n": 2}, "b_at": _AT}, "r1"), ({"b_data": None, "b_at": _AT}, "r2")]
    with store.core.write() as conn:
        conn.execute(sa.insert(event_t), rows)
        for values, run in given:
            conn.execute(update, {**values, "b_job": "core", "b_run": run})
            assert prepared.run(conn, {**values, "b_job": "prepared", "b_run": run}) == 1
    as_stored = sa.select(
        event_t.c.kind, sa.cast(event_t.c.at, sa.String), sa.cast(event_t.c.data, sa.String)
    ).order_by(event_t.c.id)
    with store.core.read() as conn:
        by_core = conn.execute(as_stored.where(event_t.c.job_name == "core")).all()
        by_prepared = conn.execute(as_stored.where(event_t.c.job_name == "prepared")).all()
    assert by_prepared == by_core
    assert [data for _, _, data in by_core] == ['{"n": 2}', "null", '{"before": 1}']  # k3: not a literal


def test_rows_come_back_as_core_reads_them(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 3)
    refs = store.dispatch.assign(T0, Chooser(), lease=LEASE)
    query = sa.select(
        attempt_t.c.id, attempt_t.c.created_at, attempt_t.c.cancel_requested, attempt_t.c.number
    )
    ids = ids_in(attempt_t.c.id, "ids", postgres=store.is_postgres)
    prepared = Prepared(query.where(ids).order_by(attempt_t.c.id))
    with store.core.read() as conn:
        core_rows = conn.execute(query.order_by(attempt_t.c.id)).all()
        rows = prepared.rows(conn, {"ids": [r.id for r in refs]})
    assert [tuple(r) for r in rows] == [tuple(r) for r in core_rows]
    assert rows[0].created_at == T0 and rows[0].created_at.tzinfo is not None
    assert rows[0].cancel_requested is False


def test_any_number_of_ids(store: Store) -> None:
    add_jobs(store, "a")
    manual_fire(store, "a", 5)
    with store.core.read() as conn:
        all_ids = sorted(conn.execute(sa.select(item_t.c.id)).scalars())
        by_ids = store.core.sql.items_by_id
        assert by_ids.rows(conn, {"ids": []}) == []
        assert [r.id for r in by_ids.rows(conn, {"ids": all_ids[:1]})] == all_ids[:1]
        assert [r.id for r in by_ids.rows(conn, {"ids": all_ids[:3]})] == all_ids[:3]
        # Unknown ids match nothing; a whole chunk of ids (the most one statement is given) is one statement.
        many = all_ids + [f"item_{n:016x}" for n in range(10_000 - len(all_ids))]
        assert [r.id for r in by_ids.rows(conn, {"ids": many})] == all_ids
        # An empty list is an empty set, also under NOT.
        not_in = Prepared(
            sa.select(item_t.c.id).where(~ids_in(item_t.c.id, "ids", postgres=store.is_postgres))
        )
        assert sorted(not_in.scalars(conn, {"ids": []})) == all_ids


def test_a_database_error_is_raised_as_core_raises_it(store: Store) -> None:
    add_jobs(store, "a")
    with pytest.raises(sa.exc.IntegrityError), store.core.write() as conn:
        store.core.sql.insert_events.many(conn, [_event("first", None)])
        store.core.sql.insert_events.many(conn, [_event(None, None)])  # an event needs a kind
    # The failed transaction left nothing, and the store goes on.
    with store.core.read() as conn:
        assert conn.execute(sa.select(event_t.c.id).where(event_t.c.kind == "first")).all() == []
    assert [j.name for j in store.jobs.all()] == ["a"]


def test_what_a_prepared_statement_may_not_hold() -> None:
    expanding = Prepared(sa.select(item_t.c.id).where(item_t.c.id.in_(["a", "b"])))
    with sa.create_engine("sqlite://").connect() as conn, pytest.raises(ValueError, match="IN list"):
        expanding.rows(conn)
    with pytest.raises(ValueError, match="defaults"):
        Prepared(sa.insert(item_t), keys=["id"])


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 6, 1, 12, 0, tzinfo=UTC),
        datetime(2026, 6, 1, 12, 0, 0, 120, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-5))),
        datetime(1, 1, 1, 0, 0, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ],
)
def test_times_are_written_and_read_on_sqlite_as_its_datetime_type_does(value: datetime) -> None:
    """UTCDateTime's own SQLite text and parse are SQLAlchemy's SQLite DATETIME's, only faster."""
    dialect = sqlite.dialect()
    ours = UTCDateTime().dialect_impl(dialect)  # the type as Core and the prepared statements bind it
    written, read = ours.bind_processor(dialect), ours.result_processor(dialect, None)
    core_written, core_read = (
        sqlite.DATETIME().bind_processor(dialect),
        sqlite.DATETIME().result_processor(dialect, None),
    )
    assert written is not None and read is not None and core_written is not None and core_read is not None
    assert written(value) == core_written(ours.process_bind_param(value, dialect))
    assert read(written(value)) == ours.process_result_value(core_read(written(value)), dialect) == value
    assert read(written(value)).tzinfo is UTC
    assert written(None) is None and read(None) is None
    with pytest.raises(ValueError, match="naive"):
        written(value.replace(tzinfo=None))
