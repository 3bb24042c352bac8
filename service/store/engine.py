"""Which database, and an engine configured for it.

DATABASE_URL unset: an SQLite file in CDS_DATA_DIR, the "embedded" store, migrated on first
start. Otherwise PostgreSQL (psycopg 3) or an SQLite file or memory URL.

SQLite is set up for several writer processes on one file: WAL journal (readers never block
the writer), a 30 s busy timeout, and write transactions opened with BEGIN IMMEDIATE so two
writers queue on the lock instead of failing with SQLITE_BUSY when one of them has read first.

Durability (docs/operations.md, "Card log durability"): SQLite runs `synchronous=NORMAL` in WAL
mode. A commit is in the WAL file, in the operating system's page cache, when the call returns: it
survives the crash or kill of any process, the service's included; only a power loss or a kernel
crash before the next WAL sync (at each checkpoint) can lose the last transactions, never corrupt
the database. `FULL` would fsync the WAL on every commit. PostgreSQL keeps `synchronous_commit` on
(its default): a session whose server default is `off` turns it back on when it connects.
"""
from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

EMBEDDED_FILE_NAME = "fasciculation-cds.sqlite3"
# Execution option: open this transaction for writing (SQLite: BEGIN IMMEDIATE).
WRITE = {"fasciculation_cds_write": True}
SQLITE_BUSY_TIMEOUT_SECONDS = 30
SQLITE_SYNCHRONOUS = "NORMAL"  # in WAL mode: survives a process crash; see the module docstring


@dataclass(frozen=True)
class DatabaseTarget:
    url: URL
    embedded: bool  # the default SQLite file: created and migrated automatically on first start

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @property
    def in_memory(self) -> bool:
        return self.is_sqlite and self.url.database in (None, "", ":memory:")

    @property
    def sqlite_file(self) -> Path | None:
        return None if not self.is_sqlite or self.in_memory else Path(str(self.url.database))

    def describe(self) -> str:
        """For logs and messages: never the password."""
        return self.url.render_as_string(hide_password=True)


def resolve_target(database_url: str | None, data_dir: str) -> DatabaseTarget:
    if database_url:
        url = make_url(database_url)
        target = DatabaseTarget(url, embedded=False)
        # An in-memory database cannot be migrated by a separate command: it is always embedded.
        return DatabaseTarget(url, embedded=True) if target.in_memory else target
    path = (Path(data_dir) / EMBEDDED_FILE_NAME).absolute()
    return DatabaseTarget(URL.create("sqlite+pysqlite", database=str(path)), embedded=True)


def build_engine(target: DatabaseTarget) -> Engine:
    if target.is_sqlite:
        engine = _sqlite_engine(target)
    else:
        # PostgreSQL: READ COMMITTED, unique constraints and ON CONFLICT DO NOTHING give exactly-once rows.
        engine = create_engine(target.url, pool_pre_ping=True, pool_size=5, max_overflow=10,
                               pool_recycle=1800, connect_args={"connect_timeout": 5})
        _keep_commits_synchronous(engine)
    _dispose_pool_after_fork(engine)
    return engine


def _keep_commits_synchronous(engine: Engine) -> None:
    """A card answered is a card logged: a commit must be on the server's disk before it returns,
    whatever the server's default. `off` is the one setting that returns earlier; `local`,
    `remote_write`, `on` and `remote_apply` (synchronous replication) all wait for the local flush."""
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            row = cursor.fetchone()
            if row is not None and row[0] == "off":
                cursor.execute("SET synchronous_commit TO on")
        dbapi_connection.commit()  # psycopg opened a transaction for SHOW; the pool expects none


def _sqlite_engine(target: DatabaseTarget) -> Engine:
    connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False}
    if target.in_memory:
        # One shared connection, or every checkout would see its own empty database.
        engine = create_engine(target.url, connect_args=connect_args, poolclass=StaticPool)
    else:
        file = target.sqlite_file
        assert file is not None
        file.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(target.url, connect_args=connect_args, pool_size=8, max_overflow=8)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN, not the sqlite3 module's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not target.in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get("fasciculation_cds_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _dispose_pool_after_fork(engine: Engine) -> None:
    # gunicorn preloads the app in the master: a forked worker must not reuse the master's sockets.
    reference = weakref.ref(engine)

    def after_fork_in_child() -> None:
        engine_ = reference()
        if engine_ is not None:
            engine_.dispose(close=False)

    os.register_at_fork(after_in_child=after_fork_in_child)
