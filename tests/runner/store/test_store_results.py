"""`store.results` on SQLite and PostgreSQL: the items where the columns of a fire's results first appear, found
by the database's JSON functions, plan the same columns in the same order as a pass over every row."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from store_helpers import T0, add_jobs

import cyberdesk_runner.store.results as results_module
from cyberdesk_runner.results.table import ResultTable
from cyberdesk_runner.store import Store
from cyberdesk_runner.store.records import NewFire, NewItem
from cyberdesk_runner.store.tables import attempt_t, item_t, step_run_t

#: seq -> (inputs, the final attempt's output, or its steps' (alias, output)); item 4 has no attempt yet.
ITEMS: list[tuple[dict[str, Any], Any]] = [
    ({"claim": "C-0"}, {"ref": "R-0", "ok": True}),
    ({"claim": "C-1"}, ["not", "an", "object"]),
    ({"amount": 4, "claim": "C-2"}, {"ok": False, "ref": "R-2", "pages": [1, 2]}),
    ({"claim": "C-3"}, [("signin", {"user": "u"}), (None, {"ref": "R-3"}), (None, None)]),
    ({"claim": "C-4", "note": "late"}, None),
    ({"claim": "C-5"}, [("signin", {"user": "u", "mfa": True}), (None, {"late": 1})]),
    ({"claim": "C-6"}, {"ref": "R-6", "extra": "x"}),
]

#: What the attempts and step runs below share: a run of workflow "wf" that succeeded at T0.
_ENDED: dict[str, Any] = {"workflow_id": "wf", "status": "success", "created_at": T0, "updated_at": T0}


def _fire(store: Store) -> str:
    add_jobs(store, "j")
    fire_id = store.fires.insert(NewFire("j", "manual", None), [NewItem(i) for i, _ in ITEMS], T0)
    assert fire_id is not None
    items = {i.seq: i for i in store.queries.item_views(fire_id)}
    with store.engine.begin() as conn:
        for seq, (_, output) in enumerate(ITEMS):
            if seq == 4:
                continue
            item = items[seq]
            status = "failed" if seq == 6 else "succeeded"
            conn.execute(sa.update(item_t).where(item_t.c.id == item.id).values(attempts=1, status=status))
            steps = output if isinstance(output, list) and output and isinstance(output[0], tuple) else None
            conn.execute(
                sa.insert(attempt_t).values(
                    id=f"att_{seq}",
                    item_id=item.id,
                    fire_id=fire_id,
                    job_name="j",
                    number=1,
                    idempotency_key=f"key-{seq}",
                    run_id=f"run-{seq}",
                    machine_id=f"m-{seq}",
                    deadline_at=T0,
                    output=None if steps else output,
                    **_ENDED,
                )
            )
            for index, (alias, step_output) in enumerate(steps or ()):
                conn.execute(
                    sa.insert(step_run_t).values(
                        id=f"step_{seq}_{index}",
                        attempt_id=f"att_{seq}",
                        step_index=index,
                        alias=alias,
                        workflow="W",
                        run_id=f"run-{seq}-{index}",
                        output=step_output,
                        **_ENDED,
                    )
                )
    return fire_id


def _columns(store: Store, fire_id: str, **kwargs: Any) -> list[str]:
    return ResultTable.plan(store.results.result_rows(fire_id, **kwargs), ("token",)).columns


def test_the_first_items_of_each_column_plan_the_columns_of_every_item(store: Store) -> None:
    fire_id = _fire(store)
    seqs = store.results.column_seqs(fire_id)
    # claim, ref, ok (0); amount, pages (2); the steps' keys (3); note (4); mfa, late (5); extra (6). Item 1
    # brings nothing new (its output is no object).
    assert seqs == {0, 2, 3, 4, 5, 6}
    every = _columns(store, fire_id)
    assert _columns(store, fire_id, seqs=seqs) == every
    assert every[6:] == [
        "claim",
        "amount",
        "note",
        "token",
        "output.ref",
        "output.ok",
        "output.pages",
        "output.signin.user",
        "output.2.ref",
        "output.signin.mfa",
        "output.2.late",
        "output.extra",
        "tokens",
        "billed_seconds",
        "files",
        "error",
    ]


def test_the_first_items_only_among_the_status_asked_for(store: Store) -> None:
    fire_id = _fire(store)
    assert store.results.column_seqs(fire_id, status="failed") == {6}
    assert store.results.column_seqs(fire_id, status="pending") == {4}
    for status in ("failed", "pending", "succeeded"):
        seqs = store.results.column_seqs(fire_id, status=status)
        assert _columns(store, fire_id, status=status, seqs=seqs) == _columns(store, fire_id, status=status)
    assert store.results.column_seqs("fire_none") == set()


@pytest.mark.parametrize("walked", [1, 3])
def test_keys_past_the_walk_are_found_from_where_it_stopped(
    store: Store, monkeypatch: pytest.MonkeyPatch, walked: int
) -> None:
    # A fire whose items bring new keys all along: after `WALKED_KEYS` keys, one grouping pass finds the rest.
    fire_id = _fire(store)
    every = store.results.column_seqs(fire_id)
    monkeypatch.setattr(results_module, "WALKED_KEYS", walked)
    assert store.results.column_seqs(fire_id) == every == {0, 2, 3, 4, 5, 6}
    assert store.results.column_seqs(fire_id, status="succeeded") == {0, 2, 3, 5}
