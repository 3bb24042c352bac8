"""A card answered is a card logged: a committed card-log row outlives the process that wrote it.

SQLite runs WAL with `synchronous=NORMAL` (service/store/engine.py): a commit reaches the WAL file
before the call returns, so killing the writer the moment after loses nothing; only a power loss can
lose the last transactions (docs/operations.md). PostgreSQL keeps `synchronous_commit` on even where the
server's default turns it off.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

from sqlalchemy import create_engine, select, text

from service.store import open_store
from service.store.engine import build_engine, resolve_target
from service.store.models import IssuedCard
from tests.store.support import ROOT, store_settings


def test_the_embedded_store_runs_wal_with_synchronous_normal(tmp_path):
    store = open_store(store_settings(tmp_path))
    try:
        with store.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL (FULL is 2)
    finally:
        store.close()


WRITER = textwrap.dedent("""
    import dataclasses, os, sys, uuid
    from datetime import UTC, datetime
    from service.store import IssuedCardRow, open_store
    from tests.store.support import store_settings
    from pathlib import Path
    store = open_store(store_settings(Path(sys.argv[1])))
    rows = [IssuedCardRow(card_uuid=sys.argv[2] + f"-{n}", service_id="s", topic_code="t", topic_display=None,
                          knowledge_version=None, hook_instance=str(uuid.uuid4()),
                          issued_at=datetime.now(UTC), patient_key=None) for n in range(3)]
    for _ in range(20):  # enough commits that some sit in the WAL, none checkpointed into the database
        store.record_issued_cards([dataclasses.replace(r, card_uuid=f"{r.card_uuid}-{uuid.uuid4().hex}")
                                   for r in rows])
    store.record_issued_cards(rows)  # the call's log write has returned: the card may now be answered
    os.kill(os.getpid(), 9)          # and the worker dies at once: no close, no checkpoint, no atexit
""")


def test_a_committed_row_survives_the_writer_being_killed_right_after_the_commit(tmp_path):
    marker = uuid.uuid4().hex
    writer = subprocess.run([sys.executable, "-c", WRITER, str(tmp_path), marker], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert writer.returncode == -9, writer.stderr[-2000:]
    assert (tmp_path / "fasciculation-cds.sqlite3-wal").stat().st_size > 0  # the rows are in the WAL only
    store = open_store(store_settings(tmp_path))
    try:
        with store.engine.connect() as connection:
            uuids = set(connection.scalars(select(IssuedCard.card_uuid)))
    finally:
        store.close()
    assert {f"{marker}-{n}" for n in range(3)} <= uuids
    assert len(uuids) == 21 * 3


def _synchronous_commit(url: str) -> str:
    engine = build_engine(resolve_target(url, "unused"))
    try:
        with engine.connect() as connection:
            return connection.execute(text("SHOW synchronous_commit")).scalar()
    finally:
        engine.dispose()


def test_postgresql_turns_synchronous_commit_back_on_where_the_server_default_is_off(postgres_server_url):
    separator = "&" if "?" in postgres_server_url else "?"
    assert _synchronous_commit(f"{postgres_server_url}{separator}options=-csynchronous_commit%3Doff") == "on"
    # Settings that wait at least for the local flush are the operator's to choose, and kept.
    for kept in ("local", "remote_apply"):
        assert _synchronous_commit(f"{postgres_server_url}{separator}options=-csynchronous_commit%3D{kept}") == kept
    plain = create_engine(f"{postgres_server_url}{separator}options=-csynchronous_commit%3Doff")
    try:  # the URL alone really does turn it off: the check above is not vacuous
        with plain.connect() as connection:
            assert connection.execute(text("SHOW synchronous_commit")).scalar() == "off"
    finally:
        plain.dispose()
