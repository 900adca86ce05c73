"""What a fire produced, one row per item, read as a stream (`results` command, result files).

A fire of 100,000 items is never read whole: rows come from one query in item order, fetched `batch` at a time
(a server-side cursor on PostgreSQL, SQLite's own stepping), and the caller writes each row out before the next
batch is read. The final attempt of an item is the one numbered `item.attempts` (dispatch numbers attempts
1, 2, ... and writes the number on the item in the same transaction). The step runs of a multi-step attempt come
in the same query (one database row per step, in step order, grouped back into one result row as they stream).

The columns of the results (input names, output keys) are planned before the first row is written: the database
finds, with its own JSON functions, the first item where each key appears (`column_seqs`), and the plan is made
from those few items alone, so `results F` prints its header and first rows without reading the fire twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

import attrs
import sqlalchemy as sa

from cyberdesk_runner.store.core import Aggregate
from cyberdesk_runner.store.records import FINAL_FIRE_STATUSES
from cyberdesk_runner.store.tables import attempt_t, fire_t, item_t, step_run_t

#: Rows fetched per round trip while streaming results.
RESULT_BATCH = 1000


@attrs.frozen
class StepOutput:
    """The output of one run of an item's final attempt. `alias` is None for a single-run item; for a step of a
    multi-step item it is the step's alias, or its number (from 1) when it has none."""

    alias: str | None
    output: Mapping[str, Any] | None


@attrs.frozen
class ResultRow:
    item_id: str
    seq: int
    status: str
    attempts: int
    desktop: str | None
    run_id: str | None
    inputs: Mapping[str, Any]
    outputs: tuple[StepOutput, ...]
    error: str | None
    #: What the item's runs cost, every attempt counted (None when none of its runs reported usage).
    tokens: int | None = None
    billed_seconds: float | None = None


_spent = attempt_t.alias("spent")
_COST = (
    sa.select(sa.func.sum(_spent.c.tokens))
    .where(_spent.c.item_id == item_t.c.id)
    .scalar_subquery()
    .label("tokens"),
    sa.select(sa.func.sum(_spent.c.billed_seconds))
    .where(_spent.c.item_id == item_t.c.id)
    .scalar_subquery()
    .label("billed_seconds"),
)

_COLUMNS = (
    item_t.c.id,
    item_t.c.seq,
    item_t.c.status,
    item_t.c.attempts,
    item_t.c.inputs,
    item_t.c.machine_id,
    item_t.c.machine_name,
    item_t.c.last_error,
    attempt_t.c.run_id,
    attempt_t.c.machine_id.label("run_machine_id"),
    attempt_t.c.machine_name.label("run_machine_name"),
    attempt_t.c.output,
    step_run_t.c.step_index,
    step_run_t.c.alias,
    step_run_t.c.output.label("step_output"),
)


_FINAL = sa.and_(attempt_t.c.item_id == item_t.c.id, attempt_t.c.number == item_t.c.attempts)
#: The run output an item's result shows: its final attempt's, or one step's of a multi-step attempt.
_OUTPUT = sa.case((step_run_t.c.step_index.is_(None), attempt_t.c.output), else_=step_run_t.c.output)


def _without_jit(conn: sa.Connection) -> None:
    """No JIT compilation for this transaction on PostgreSQL: the plan of a whole fire costs enough to be
    compiled, which took over a second before the first row (measured on a 100,000-item fire) and saves less."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL jit = off")


#: Keys found one query each by `_first_appearances` before the rest are found by one grouping pass.
WALKED_KEYS = 32


def _first_appearances(
    conn: sa.Connection,
    rows: sa.FromClause,
    key: sa.ColumnElement[Any],
    where: Sequence[sa.ColumnElement[bool]],
) -> set[int]:
    """The seq of the item where each value of `key` first appears among `rows` (an item per row or more).

    Walks the items in order (the index on (fire_id, seq)): each query returns the first item at or after the
    last one found that holds a key not known yet, and stops there; the last query, finding none, has read every
    item once. Past `WALKED_KEYS` keys (a fire whose items bring new keys all along), one GROUP BY over the
    items left finds the rest.
    """
    seqs: set[int] = set()
    known: list[Any] = []
    start: int | None = None

    def query(*columns: sa.ColumnElement[Any]) -> sa.Select[Any]:
        return sa.select(*columns).select_from(rows).where(*where, *_not_known(key, known, start))

    while len(known) < WALKED_KEYS:
        first = conn.execute(query(item_t.c.seq, key).order_by(item_t.c.seq).limit(1)).first()
        if first is None:
            return seqs
        seqs.add(first[0])
        known.append(first[1])
        start = first[0]
    return seqs | _grouped_first_appearances(conn, rows, [key], [*where, *_not_known(key, known, start)])


def _not_known(
    key: sa.ColumnElement[Any], known: list[Any], start: int | None
) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = [key.not_in(known)] if known else []
    return conditions if start is None else [*conditions, item_t.c.seq >= start]


def _grouped_first_appearances(
    conn: sa.Connection,
    rows: sa.FromClause,
    keys: Sequence[sa.ColumnElement[Any]],
    where: Sequence[sa.ColumnElement[bool]],
) -> set[int]:
    """The same as `_first_appearances`, in one GROUP BY over every row: no order needed, so the database may
    hash and read in parallel."""
    query = sa.select(sa.func.min(item_t.c.seq)).select_from(rows).where(*where).group_by(*keys)
    return set(conn.execute(query).scalars())


class Results(Aggregate):
    """Reads of what fires produced (`store.results`)."""

    def column_seqs(self, fire_id: str, *, status: str | None = None) -> set[int]:
        """The seqs of the items where each input name and each output key (per step) of the fire's results
        first appears, in item order.

        Planning the columns over these items alone (`result_rows(seqs=...)`) names them in the order a pass
        over every item would: any other item only holds keys an earlier one brought. The keys are read by the
        database (its JSON functions), a few times faster than decoding every row in Python. SQLite walks the
        items in order (`_first_appearances`): a fire whose items all hold the first one's keys is read once,
        with nothing sorted or grouped. PostgreSQL groups them (`_grouped_first_appearances`).
        """
        postgres = self.core.is_postgres

        def keys_of(value: sa.ColumnElement[Any]) -> tuple[sa.TableValuedAlias, sa.ColumnElement[bool]]:
            """The keys of a JSON object (none for anything else), and the join condition that keeps them."""
            if postgres:  # json_object_keys refuses non-objects: they are read as an empty one
                empty: sa.ColumnElement[Any] = sa.literal_column("'{}'::json")
                an_object = sa.case((sa.func.json_typeof(value) == "object", value), else_=empty)
                return sa.func.json_object_keys(an_object).table_valued("key").render_derived(), sa.true()
            # SQLite's json_each takes anything: an object's keys are text, an array's integers, a scalar's NULL.
            # Filtering on that parses each value once (json_type first would parse it twice).
            keys = sa.func.json_each(value).table_valued("key")
            return keys, sa.func.typeof(keys.c.key) == "text"

        (inputs, input_keys), (outputs, output_keys) = keys_of(item_t.c.inputs), keys_of(_OUTPUT)
        of_fire = [item_t.c.fire_id == fire_id]
        if status is not None:
            of_fire.append(item_t.c.status == status)
        # Only an item with an attempt has a final one (attempts are numbered from 1): the others need no look-up.
        with_attempts = [*of_fire, item_t.c.attempts > 0]
        seqs: set[int] = set()
        final_runs = item_t.join(attempt_t, _FINAL).outerjoin(
            step_run_t, step_run_t.c.attempt_id == attempt_t.c.id
        )
        with self.core.read() as conn:
            _without_jit(conn)
            if postgres:
                # PostgreSQL groups the whole fire at once faster than it walks it in order (a hash aggregate,
                # read in parallel where it may; the walk looks up each item's attempt by index): on a
                # 100,000-item fire, 0.33 s against 0.67 s for the outputs' keys.
                seqs |= _grouped_first_appearances(
                    conn, item_t.join(inputs, input_keys), [inputs.c.key], of_fire
                )
                step_keys = [step_run_t.c.step_index, step_run_t.c.alias, outputs.c.key]
                seqs |= _grouped_first_appearances(
                    conn, final_runs.join(outputs, output_keys), step_keys, with_attempts
                )
                return seqs
            # An output key is one per step: (step, alias, key) as one value, JSON text (NULLs included, unlike
            # a row value, which NOT IN would never match).
            step_key = sa.func.json_array(step_run_t.c.step_index, step_run_t.c.alias, outputs.c.key)
            seqs |= _first_appearances(conn, item_t.join(inputs, input_keys), inputs.c.key, of_fire)
            seqs |= _first_appearances(conn, final_runs.join(outputs, output_keys), step_key, with_attempts)
        return seqs

    def result_rows(
        self,
        fire_id: str,
        *,
        status: str | None = None,
        seqs: Collection[int] | None = None,
        batch: int = RESULT_BATCH,
    ) -> Iterator[ResultRow]:
        """The fire's items in order (only those in `status`, and those numbered `seqs`, when given), each with
        its final attempt: its run's output, or for a multi-step attempt each step's output under its alias (or
        number).

        A generator holding one read transaction open: consume it (or close it) promptly.
        """
        query = (
            sa.select(*_COLUMNS, *_COST)
            .select_from(
                item_t.outerjoin(attempt_t, _FINAL).outerjoin(
                    step_run_t, step_run_t.c.attempt_id == attempt_t.c.id
                )
            )
            .where(item_t.c.fire_id == fire_id)
            .order_by(item_t.c.seq, item_t.c.id, step_run_t.c.step_index)
        )
        if status is not None:
            query = query.where(item_t.c.status == status)
        if seqs is not None:
            query = query.where(item_t.c.seq.in_(sorted(seqs)))
        with self.core.read() as conn:
            _without_jit(conn)
            rows = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
            for _item, group in itertools.groupby(rows, key=lambda r: r.id):
                steps = list(group)  # one row per step run (one row for a single-run item)
                r = steps[0]
                if r.step_index is None:
                    outputs: tuple[StepOutput, ...] = (StepOutput(None, r.output),)
                else:
                    outputs = tuple(
                        StepOutput(s.alias or str(s.step_index + 1), s.step_output) for s in steps
                    )
                yield ResultRow(
                    r.id,
                    r.seq,
                    r.status,
                    r.attempts,
                    r.run_machine_name or r.run_machine_id or r.machine_name or r.machine_id,
                    r.run_id,
                    r.inputs or {},
                    outputs,
                    # A retried item that succeeded keeps its earlier attempt's error on the item; not its result.
                    None if r.status == "succeeded" else r.last_error,
                    int(r.tokens) if r.tokens is not None else None,
                    float(r.billed_seconds) if r.billed_seconds is not None else None,
                )

    def latest_finished_fire(self, job_name: str) -> str | None:
        """The job's fire that finished last and had items (a skipped slot has no results); None if none."""
        with self.core.read() as conn:
            return conn.execute(
                sa.select(fire_t.c.id)
                .where(fire_t.c.job_name == job_name)
                .where(fire_t.c.status.in_(sorted(FINAL_FIRE_STATUSES - {"skipped"})))
                .where(fire_t.c.items_total > 0)
                .order_by(fire_t.c.finished_at.desc(), fire_t.c.id.desc())
                .limit(1)
            ).scalar()
