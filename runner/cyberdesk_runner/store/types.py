"""Column types shared by the tables, and the base class of every table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel
from sqlmodel._compat import SQLModelConfig


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values).

    On SQLite the text is written and read by `_to_sqlite` / `_from_sqlite`: the same text as SQLAlchemy's
    SQLite DATETIME (`YYYY-MM-DD HH:MM:SS.ffffff`, in UTC), without its formatting through a dict and its
    regular-expression parse: the hot paths bind about fifteen times per run and read five.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, _dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, _dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def bind_processor(self, dialect: sa.Dialect) -> Callable[[datetime | None], Any] | None:
        return _to_sqlite if dialect.name == "sqlite" else super().bind_processor(dialect)

    def result_processor(
        self, dialect: sa.Dialect, coltype: object
    ) -> Callable[[Any], datetime | None] | None:
        return _from_sqlite if dialect.name == "sqlite" else super().result_processor(dialect, coltype)


def _to_sqlite(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; use timezone-aware UTC times")
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 (a tuple is the quickest to format)
        utc.year,
        utc.month,
        utc.day,
        utc.hour,
        utc.minute,
        utc.second,
        utc.microsecond,
    )


def _from_sqlite(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value + "+00:00")  # quicker than .replace(tzinfo=UTC)


class TableModel(SQLModel):
    """The base of the store's tables (`class JobRow(TableModel, table=True)`): SQLModel models whose pydantic
    validator is built on first use, not with the class. The store reads and writes through their tables and
    never validates a row; building the validators of every table cost each command about 15 ms of CPU before
    its first line."""

    model_config = SQLModelConfig(defer_build=True)
