"""Statements of the hot paths run on the transaction's DB-API cursor (`Prepared`), compiled once per store.

A SQLAlchemy Core `conn.execute` costs 15-40 µs of Python per statement here before the database does anything
(execution context, parameter and result processing, row objects; more with an IN list expanded per call), and
an executemany costs a few µs more per row. The news transactions run about 20 statements each, so with slow news
(a few runs per transaction) that was most of the store's CPU per run. A `Prepared` statement is the same Core
statement, compiled once for the store's dialect on first use: each call binds its parameters in order, with the
column types' own bind processors (the stored values are exactly what Core writes), runs the SQL on the DB-API
cursor of the SQLAlchemy connection (so in its transaction), and makes rows (named tuples) with the types' result
processors. A database error is handled by the connection as Core's would be (wrapped as `DBAPIError`, a lost
connection invalidated), so `retry_transient` sees the same errors.

What a statement may hold: bind parameters named by the caller (`sa.bindparam("b_...")`), literal values
(`one_of` for a literal IN list), and id lists as `ids_in(column, "ids")`: an array on PostgreSQL (`= ANY`),
on SQLite an IN list of as many placeholders as ids, as Core renders it (so SQLite plans the query as before:
a JSON array read by `json_each` made it prefer other indexes). An INSERT names its columns (`keys`), every
column with a default among them.
"""

from __future__ import annotations

import collections
import operator
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Dialect

__all__ = ["Prepared", "ids_in", "one_of"]

_Processor = Callable[[Any], Any]
_Statement = sa.Select[Any] | sa.Insert | sa.Update | sa.Delete


def one_of(column: sa.ColumnElement[Any], values: Iterable[Any]) -> sa.ColumnElement[bool]:
    """`column IN (v1, v2, ...)` with the values bound once, not as an IN list expanded on each call."""
    return column.in_([sa.literal(v, column.type) for v in values])


def ids_in(column: sa.ColumnElement[Any], name: str, *, postgres: bool) -> sa.ColumnElement[bool]:
    """`column` is one of the ids bound as `name` (a list): `= ANY(array)` on PostgreSQL (one SQL string for any
    number of ids), an IN list rendered for the number of ids on SQLite."""
    if postgres:
        return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(sa.String)))
    return column.in_(sa.bindparam(name, expanding=True))


class _Compiled:
    """A statement compiled for one dialect: SQL, how to bind each call's parameters, how to make rows."""

    def __init__(self, statement: _Statement, dialect: Dialect, keys: Collection[str] | None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys is not None else None)
        self.sql = compiled.string
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        names = list(compiled.positiontup or []) if dialect.positional else list(dict.fromkeys(binds))
        expected = set(keys or ()) | {name for name, bind in binds.items() if bind.required}
        #: (the caller's name for it, or None for a literal; the literal, bound already; its bind processor;
        #: whether it is a list, one placeholder per element), in the order the SQL takes them.
        self.binds: list[tuple[str | None, Any, _Processor | None, bool]] = []
        #: The SQL's IN lists to render per call: (its placeholder in `sql`, the list's name).
        self.lists: list[tuple[str, str]] = []
        for name in names:
            bind = binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.expanding:
                placeholder = f"(__[POSTCOMPILE_{name}])"  # how Core leaves an IN list to render per call
                if name not in expected or not dialect.positional or placeholder not in self.sql:
                    raise ValueError(f"{name}: an IN list of literals (use one_of()) or of unknown form")
                self.lists.append((placeholder, name))
                self.binds.append((name, None, processor, True))
            elif name in expected:
                self.binds.append((name, None, processor, False))
            else:
                literal = bind.effective_value
                self.binds.append((None, literal if processor is None else processor(literal), None, False))
        self.names = names
        #: How to bind a call's parameters quickly; None with IN lists (a placeholder per element, per call).
        self._plan = _Plan(self.binds) if not self.lists else None
        #: The SQL for each combination of list lengths met so far.
        self._sql_for: dict[tuple[int, ...], str] = {}
        self.positional = dialect.positional
        self.dialect = dialect
        self.columns = list(getattr(statement, "selected_columns", ()))
        self.row: Any = (
            collections.namedtuple("Row", [c.key for c in self.columns], rename=True)
            if self.columns
            else None
        )
        #: The result processors by column position (made with the first result's column types).
        self.results: list[tuple[int, _Processor]] | None = None

    def parameters(self, given: Mapping[str, Any]) -> Any:
        """One call's parameters as the driver takes them: a tuple (positional) or a dict (named)."""
        plan = self._plan
        values = plan.values(given) if plan is not None else self._values_with_lists(given)
        if self.positional:
            return tuple(values)
        return dict(zip(self.names, values, strict=True))

    def _values_with_lists(self, given: Mapping[str, Any]) -> list[Any]:
        values: list[Any] = []
        for name, literal, processor, is_list in self.binds:
            if name is None:
                values.append(literal)
            elif is_list:
                values += given[name] if processor is None else [processor(v) for v in given[name]]
            elif processor is None:
                values.append(given[name])
            else:
                values.append(processor(given[name]))
        return values

    def sql_for(self, given: Mapping[str, Any]) -> str:
        """The SQL with its IN lists rendered for the lengths of this call's lists."""
        if not self.lists:
            return self.sql
        lengths = tuple(len(given[name]) for _, name in self.lists)
        sql = self._sql_for.get(lengths)
        if sql is None:
            sql = self.sql
            for (placeholder, _), n in zip(self.lists, lengths, strict=True):
                # An empty list is an empty set (`NOT IN` it is true), as Core renders it.
                sql = sql.replace(placeholder, f"({', '.join('?' * n)})" if n else "(SELECT NULL WHERE 0)")
            self._sql_for[lengths] = sql
        return sql

    def make_rows(self, cursor: Any) -> list[Any]:
        raw = cursor.fetchall()
        if self.results is None:
            types = [d[1] for d in cursor.description or ()]
            self.results = [
                (i, p)
                for i, (column, coltype) in enumerate(zip(self.columns, types, strict=True))
                if (p := column.type.dialect_impl(self.dialect).result_processor(self.dialect, coltype))
                is not None
            ]
        make = self.row._make
        if not self.results:
            return [make(r) for r in raw]
        rows = []
        for r in raw:
            values = list(r)
            for i, processor in self.results:
                values[i] = processor(values[i])
            rows.append(make(values))
        return rows


#: A bind processor's output for None could not be worked out beforehand: call the processor every time.
_UNKNOWN = object()


class _Plan:
    """How to bind a statement without IN lists, worked out once: the caller's values read in one
    `itemgetter` call, the bind processors applied only where a column has one (None's processed value
    computed once: most nullable columns are None in most rows), literals put in their places."""

    def __init__(self, binds: Sequence[tuple[str | None, Any, _Processor | None, bool]]) -> None:
        named = [name for name, _, _, _ in binds if name is not None]
        self._get: Callable[[Mapping[str, Any]], Any] = (
            operator.itemgetter(*named) if len(named) > 1 else _one_or_none(named)
        )
        self._converted: list[tuple[int, _Processor, Any]] = []
        self._literals: list[tuple[int, Any]] = []
        index = 0
        for position, (name, literal, processor, _) in enumerate(binds):
            if name is None:
                self._literals.append((position, literal))
                continue
            if processor is not None:
                self._converted.append((index, processor, _processed_none(processor)))
            index += 1

    def values(self, given: Mapping[str, Any]) -> list[Any]:
        values = list(self._get(given))
        for i, processor, none in self._converted:
            value = values[i]
            values[i] = none if value is None and none is not _UNKNOWN else processor(value)
        for position, literal in self._literals:  # in ascending order: each lands in its final place
            values.insert(position, literal)
        return values


def _one_or_none(named: list[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    if not named:
        return lambda _given: ()
    name = named[0]
    return lambda given: (given[name],)


def _processed_none(processor: _Processor) -> Any:
    """What `processor` makes of None (JSON's is 'null', a time's None), or _UNKNOWN if it refuses it."""
    try:
        return processor(None)
    except Exception:
        return _UNKNOWN


class Prepared:
    """A Core statement run on the transaction's DB-API cursor; compiled on first use (the engine's dialect is
    only complete once it has connected)."""

    def __init__(self, statement: _Statement, *, keys: Collection[str] | None = None) -> None:
        if isinstance(statement, sa.Insert):
            defaults = {c.key for c in statement.table.columns if c.default is not None}
            if keys is None or not defaults <= set(keys):
                raise ValueError(f"INSERT INTO {statement.table}: name its columns, those with defaults too")
        self.statement = statement
        self.keys = keys
        self._compiled: _Compiled | None = None

    def _for(self, conn: Connection) -> _Compiled:
        compiled = self._compiled
        if compiled is None or compiled.dialect is not conn.dialect:
            compiled = self._compiled = _Compiled(self.statement, conn.dialect, self.keys)
        return compiled

    def rows(self, conn: Connection, params: Mapping[str, Any] | None = None) -> list[Any]:
        """The rows (named tuples, in the statement's column order)."""
        compiled, params = self._for(conn), params or {}
        cursor = _execute(conn, compiled.sql_for(params), compiled.parameters(params), many=False)
        try:
            return compiled.make_rows(cursor)
        finally:
            cursor.close()

    def first(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Any:
        rows = self.rows(conn, params)
        return rows[0] if rows else None

    def scalars(self, conn: Connection, params: Mapping[str, Any] | None = None) -> list[Any]:
        """The first column of every row."""
        return [r[0] for r in self.rows(conn, params)]

    def run(self, conn: Connection, params: Mapping[str, Any] | None = None) -> int:
        """Run a statement that returns no rows; returns the rows it changed."""
        compiled, params = self._for(conn), params or {}
        cursor = _execute(conn, compiled.sql_for(params), compiled.parameters(params), many=False)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def many(self, conn: Connection, params: Sequence[Mapping[str, Any]]) -> None:
        """Run a statement once per parameter set (the driver's executemany)."""
        if not params:
            return
        compiled = self._for(conn)
        if compiled.lists:
            raise ValueError("an IN list in a statement run once per parameter set")
        _execute(conn, compiled.sql, [compiled.parameters(p) for p in params], many=True).close()


def _execute(conn: Connection, sql: str, parameters: Any, *, many: bool) -> Any:
    """Run on the connection's DB-API cursor; a database error as Core's `execute` would raise it."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
    except Exception as exc:
        # The connection's own handling of a driver error: wrapped (DBAPIError, which `retry_transient` reads),
        # a lost connection invalidated (with the pool's older ones), the error events, the transaction marked.
        conn._handle_dbapi_exception(exc, sql, parameters, cursor, None)
        raise
    return cursor
