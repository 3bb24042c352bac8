"""Durable store of the cards the service issued and the feedback clinicians gave on them.

    models.py       SQLAlchemy models: issued_cards (the card log) and card_feedback
    engine.py       which database (DATABASE_URL, or SQLite in CDS_DATA_DIR) and its engine
    migrate.py      Alembic, configured in code; revisions in migrations/versions/
    repository.py   Store: the exactly-once writes and the reads (card history, analytics counts)
    patient_key.py  the pseudonymous patient key (HMAC-SHA256) and its development secret

Nothing clinical lives here: a card is a uuid, a service id and a `source.topic` code.
See docs/feedback-and-analytics.md.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from service.config import ConfigError, Settings
from service.store.engine import DatabaseTarget, build_engine, resolve_target
from service.store.migrate import current_revision, head_revision, known_revisions, upgrade
from service.store.patient_key import development_secret, patient_key, patient_namespace
from service.store.repository import FeedbackReceipt, FeedbackRow, IssuedCardRow, PastOutcome, Store

__all__ = ["FeedbackReceipt", "FeedbackRow", "IssuedCardRow", "PastOutcome", "Store", "StoreError",
           "database_target", "open_store", "patient_key", "patient_key_secret", "patient_namespace",
           "schema_status", "upgrade_schema"]

log = logging.getLogger("service.store")

UPGRADE_HINT = "run `fasciculation-cds db upgrade`"
StoreError = SQLAlchemyError  # what a store call raises when the database fails


def database_target(settings: Settings) -> DatabaseTarget:
    return resolve_target(settings.database_url, settings.data_dir)


def open_store(settings: Settings, *, upgrade_embedded: bool = True) -> Store:
    """The store, its schema checked: at head, or (embedded SQLite) brought to head now.

    Raises ConfigError with a one-line reason when the database cannot be reached or its schema is
    not the one this code needs, so the service refuses to start instead of failing on each call.
    """
    target = database_target(settings)
    setting = "DATABASE_URL" if settings.database_url else "CDS_DATA_DIR"
    try:
        with _first_start_lock(target):
            engine = build_engine(target)
            current, head = _migrated_if_embedded(engine, target, setting, upgrade_embedded)
    except OSError as error:
        raise ConfigError(f"{setting}={settings.data_dir!r}: cannot create the data directory ({error.strerror})") \
            from None
    if current != head:
        engine.dispose()
        raise ConfigError(f"{setting}: {schema_problem(current, head)}")
    return Store(engine, target)


def _migrated_if_embedded(engine: Engine, target: DatabaseTarget, setting: str,
                          upgrade_embedded: bool) -> tuple[str | None, str]:
    try:
        current = current_revision(engine)
        head = head_revision()
        if current != head and target.embedded and upgrade_embedded and current in known_revisions() | {None}:
            before, current = upgrade(engine)
            log.info("embedded database migrated", extra={
                "event": "database_migrated", "database": target.describe(), "from": before, "to": current})
    except SQLAlchemyError as error:
        engine.dispose()
        raise ConfigError(f"{setting}: cannot use the database {target.describe()}: {_one_line(error)}") from None
    return current, head


@contextlib.contextmanager
def _first_start_lock(target: DatabaseTarget) -> Iterator[None]:
    """Serialise start-up on one embedded SQLite file across processes.

    The first connection to a new file switches it to WAL, which needs the file to itself; SQLite
    answers "database is locked" at once (no busy wait) when another process is connecting at the
    same moment. Once the file exists in WAL and at head, the lock is held only for a moment.
    """
    file = target.sqlite_file
    if not target.embedded or file is None:
        yield
        return
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file.with_name(file.name + ".start-lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def schema_status(settings: Settings) -> tuple[DatabaseTarget, str | None, str]:
    """(target, current revision, head revision), without changing anything."""
    target = database_target(settings)
    engine = build_engine(target)
    try:
        return target, current_revision(engine), head_revision()
    finally:
        engine.dispose()


def upgrade_schema(settings: Settings) -> tuple[DatabaseTarget, str | None, str | None]:
    target = database_target(settings)
    engine = build_engine(target)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    return target, before, after


def schema_problem(current: str | None, head: str) -> str:
    if current is None:
        return f"the database has no schema yet; {UPGRADE_HINT}"
    if current not in known_revisions():
        return (f"the database schema is at revision {current}, which this version of the service does not "
                f"know (newer code migrated it?); its newest revision is {head}")
    return f"the database schema is at revision {current}, this version needs {head}; {UPGRADE_HINT}"


def patient_key_secret(settings: Settings) -> bytes:
    """The secret for patient keys: from configuration, which production requires.

    Production never falls back to a generated secret (Settings refuses to start without one): a
    secret kept beside the data protects nothing if both leak, and replicas would disagree.
    """
    if settings.patient_key_secret:
        return settings.patient_key_secret.encode()
    try:
        return development_secret(settings.data_dir)
    except OSError as error:
        raise ConfigError(f"CDS_DATA_DIR={settings.data_dir!r}: cannot keep the development patient-key "
                          f"secret there ({error})") from None


def _one_line(error: SQLAlchemyError) -> str:
    original = getattr(error, "orig", None) or error
    text = " ".join(str(original).split())
    return text[:300]
