"""Schema migrations with Alembic, configured in code (the migrations ship inside the package).

`upgrade` runs inside one write transaction that first takes a lock, so two processes starting
together (gunicorn workers, replicas, a deploy job) migrate once and never interleave:
PostgreSQL takes a transaction-scoped advisory lock; SQLite's BEGIN IMMEDIATE is the lock.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from service.store.engine import WRITE

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Alembic says "Context impl SQLiteImpl" at INFO on every schema check; the store logs what it did itself.
logging.getLogger("alembic").setLevel(logging.WARNING)
_ADVISORY_LOCK_KEY = 0x0FA5C1C0  # "fasciculation" migrations; any constant shared by all replicas


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migration in service/store/migrations/versions"
    return head


@functools.cache
def known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions())


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Apply migrations up to `revision`; returns (before, after)."""
    with engine.connect().execution_options(**WRITE) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
        before = MigrationContext.configure(connection).get_current_revision()
        command.upgrade(alembic_config(connection), revision)
        after = MigrationContext.configure(connection).get_current_revision()
    return before, after
