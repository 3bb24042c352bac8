"""Alembic migrations: shipped in the package, applied by `db upgrade`, checked at start."""
from __future__ import annotations

import fnmatch
import tomllib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from service import create_app
from service.config import ConfigError
from service.store import open_store, upgrade_schema
from service.store.engine import EMBEDDED_FILE_NAME
from service.store.migrate import MIGRATIONS_DIR, head_revision
from service.store.models import Base
from tests.store.support import ROOT, app_for, run_cli, store_settings


def refusal(settings) -> str:
    with pytest.raises(ConfigError) as raised:
        create_app(settings)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_the_embedded_database_is_created_and_migrated_on_first_start(tmp_path):
    data_dir = tmp_path / "fresh" / "var"
    app = app_for(store_settings(data_dir))
    assert (data_dir / EMBEDDED_FILE_NAME).exists()
    store = app.extensions["fasciculation_cds_card_log"].store
    with store.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head_revision()
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    app_for(store_settings(data_dir))  # and simply opened the second time


def test_a_configured_database_without_schema_refuses_to_start_with_the_command_to_run(database_url, tmp_path):
    settings = store_settings(tmp_path, database_url)
    message = refusal(settings)
    assert message == "DATABASE_URL: the database has no schema yet; run `fasciculation-cds db upgrade`"
    upgrade_schema(settings)
    app_for(settings)


def test_a_schema_behind_or_unknown_is_refused(ready_database_url, tmp_path):
    settings = store_settings(tmp_path, ready_database_url)
    engine = create_engine(ready_database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
    assert "does not know" in refusal(settings)
    engine.dispose()


def test_an_unreachable_database_is_a_one_line_refusal_without_the_password(tmp_path):
    settings = store_settings(tmp_path, "postgresql+psycopg://cds:s3cret@127.0.0.1:9/cds?connect_timeout=1")
    message = refusal(settings)
    assert message.startswith("DATABASE_URL: cannot use the database postgresql+psycopg://cds:***@127.0.0.1:9/cds")
    assert "s3cret" not in message


def test_a_bad_database_url_is_refused_without_echoing_it():
    from service.config import Settings
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"DATABASE_URL": "mysql://root:s3cret@db/cds"})
    assert str(raised.value).startswith("DATABASE_URL=<hidden>: must be a postgresql://")
    assert "s3cret" not in str(raised.value)


def test_postgres_urls_use_psycopg_3():
    from service.config import Settings
    settings = Settings.from_env({"DATABASE_URL": "postgres://cds@db/cds"})
    assert settings.database_url == "postgresql+psycopg://cds@db/cds"


def test_the_cli_upgrades_reports_status_and_is_idempotent(database_url, tmp_path):
    env = {"DATABASE_URL": database_url, "CDS_DATA_DIR": str(tmp_path)}
    status = run_cli("db", "status", env=env)
    assert status.returncode == 1 and "run `fasciculation-cds db upgrade`" in status.stdout
    first = run_cli("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    assert f"upgraded empty -> {head_revision()}" in first.stdout
    again = run_cli("db", "upgrade", env=env)
    assert again.returncode == 0 and f"already at {head_revision()}" in again.stdout
    status = run_cli("db", "status", env=env)
    assert status.returncode == 0 and "(current)" in status.stdout


def test_serve_refuses_an_unmigrated_database_with_one_line(tmp_path):
    result = run_cli("serve", "--port", "1", env={"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})
    assert result.returncode == 2
    assert result.stderr.strip() == ("fasciculation-cds: DATABASE_URL: the database has no schema yet; "
                                     "run `fasciculation-cds db upgrade`")


def test_the_models_match_the_migrations(ready_database_url):
    engine = create_engine(ready_database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                       Base.metadata)
    engine.dispose()
    assert differences == []


def test_the_wheel_carries_the_migrations_and_templates():
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = package_data["service"]
    service_dir = ROOT / "service"
    needed = [path for path in [*MIGRATIONS_DIR.rglob("*"), *(service_dir / "templates").rglob("*")]
              if path.is_file() and "__pycache__" not in path.parts]
    assert any(path.name == "env.py" for path in needed) and any(path.suffix == ".html" for path in needed)
    for path in needed:
        relative = path.relative_to(service_dir).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative
    # Alembic finds its revisions by directory; no alembic.ini is needed at run time.
    assert not list(ROOT.glob("alembic.ini"))


def test_two_starters_racing_on_a_fresh_embedded_database_migrate_it_once(tmp_path):
    import threading
    settings = store_settings(tmp_path)
    errors: list[BaseException] = []
    stores = []

    def start() -> None:
        try:
            stores.append(open_store(settings))
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for store in stores:
        store.close()
