"""Fixtures for the store, feedback and analytics tests: a private SQLite file or PostgreSQL schema each."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from tests.store.support import OPEN_APPS, close_app, drop_schema

# CI runs PostgreSQL on 127.0.0.1:5432 with trust auth and a database `test`.
POSTGRES_CANDIDATES = (
    os.environ.get("CDS_TEST_POSTGRES_URL", ""),
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)


@pytest.fixture(autouse=True)
def close_store_apps():
    yield
    while OPEN_APPS:
        close_app(OPEN_APPS.pop())


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """A PostgreSQL URL that connects; skip when there is none, but fail under CI (it must be there)."""
    problems = []
    for url in filter(None, POSTGRES_CANDIDATES):
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return url
        except OperationalError as error:
            problems.append(f"{engine.url.render_as_string(hide_password=True)}: {type(error.orig).__name__}")
        finally:
            engine.dispose()
    message = "PostgreSQL is not reachable (" + "; ".join(problems) + ")"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must provide it")
    pytest.skip(message)


@pytest.fixture
def postgres_url(postgres_server_url) -> Iterator[str]:
    """A URL whose connections work in a fresh schema of their own, dropped after the test."""
    schema = f"cds_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(postgres_server_url)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    separator = "&" if "?" in postgres_server_url else "?"
    yield f"{postgres_server_url}{separator}options=-csearch_path%3D{schema}"
    drop_schema(postgres_server_url, schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """Each backend in turn: an SQLite file (explicit URL) or a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite+pysqlite:///{tmp_path / 'store.sqlite3'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def ready_database_url(database_url, tmp_path) -> str:
    """`database_url` with the schema migrated, as `fasciculation-cds db upgrade` leaves it."""
    from service.store import upgrade_schema
    from tests.store.support import store_settings
    upgrade_schema(store_settings(tmp_path, database_url))
    return database_url


@pytest.fixture
def app(tmp_path):
    """The real services on the embedded SQLite store in a private data directory."""
    from tests.store.support import app_for, store_settings
    return app_for(store_settings(tmp_path / "data"))


@pytest.fixture
def client(app):
    return app.test_client()
