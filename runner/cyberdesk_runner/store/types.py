"""Column types shared by the tables, and the base class of every table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel
from sqlmodel._compat import SQLModelConfig


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

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


class TableModel(SQLModel):
    """The base of the store's tables (`class JobRow(TableModel, table=True)`): SQLModel models whose pydantic
    validator is built on first use, not with the class. The store reads and writes through their tables and
    never validates a row; building the validators of every table cost each command about 15 ms of CPU before
    its first line."""

    model_config = SQLModelConfig(defer_build=True)
