"""Alembic environment: run by `service.store.migrate` on a connection it has already opened.

There is no alembic.ini: `fasciculation-cds db upgrade` configures Alembic in code, so the wheel
carries everything it needs. The connection arrives inside a write transaction that holds the
migration lock (PostgreSQL advisory lock / SQLite BEGIN IMMEDIATE).
"""
from __future__ import annotations

from alembic import context

from service.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `fasciculation-cds db upgrade`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
