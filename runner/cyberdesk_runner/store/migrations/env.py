"""Alembic's entry point. Run through `cyberdesk_runner.store.migrations.upgrade`, which passes an open
connection in a transaction (and holds the upgrade lock): offline SQL scripts are not supported."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from cyberdesk_runner.store.migrations import target_metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "run the store's migrations with `cyberdesk-runner db upgrade` or "
        "cyberdesk_runner.store.migrations.upgrade(engine), not the alembic command"
    )
context.configure(
    connection=connection,
    target_metadata=target_metadata(),
    # SQLite cannot ALTER most things: batch mode copies the table instead. A no-op on PostgreSQL.
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
