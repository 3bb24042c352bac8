"""No row lost and none stored twice, under many threads and under two server processes, on SQLite and PostgreSQL."""
from __future__ import annotations

import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests

from service.store import FeedbackRow, IssuedCardRow, open_store
from tests.store.support import (FEEDBACK_PATH, SERVICE_ID, SERVICE_PATH, ServerProcess, accepted, fixture_request,
                                 overridden, row_counts, run_cli, store_settings)

THREADS = 16


def test_many_threads_write_every_row_exactly_once(ready_database_url, tmp_path):
    store = open_store(store_settings(tmp_path, ready_database_url))
    now = datetime.now(UTC)
    cards = [IssuedCardRow(str(uuid.uuid4()), SERVICE_ID, "reassurance", "Reassurance", "v1", str(uuid.uuid4()),
                           now, uuid.uuid4().hex) for _ in range(200)]
    # Every fact is sent by every thread, in its own order and batches, as EHRs retrying would.
    feedback = [FeedbackRow(card.card_uuid, "accepted", now + timedelta(seconds=index), accepted_suggestions=())
                for index, card in enumerate(cards)]
    barrier = threading.Barrier(THREADS)

    def writer(worker: int) -> int:
        mine = cards[worker::THREADS]
        barrier.wait()
        for start in range(0, len(mine), 5):
            store.record_issued_cards(mine[start:start + 5] + cards[start:start + 1])  # with a repeat
        batch = feedback[:]
        random.Random(worker).shuffle(batch)
        return sum(store.record_feedback(SERVICE_ID, batch[start:start + 20], received_at=now).stored
                   for start in range(0, len(batch), 20))

    with ThreadPoolExecutor(THREADS) as pool:
        stored = sum(pool.map(writer, range(THREADS)))
    store.close()
    assert row_counts(ready_database_url) == (200, 200)
    assert stored == 200  # each fact was new to exactly one writer


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_service_processes_on_one_database_lose_nothing_and_duplicate_nothing(backend, tmp_path, request):
    if backend == "sqlite":
        # Both start on the same fresh embedded file: they also race to create and migrate it.
        env = {"CDS_DATA_DIR": str(tmp_path / "data")}
        database_url = f"sqlite+pysqlite:///{tmp_path / 'data' / 'fasciculation-cds.sqlite3'}"
    else:
        database_url = request.getfixturevalue("postgres_url")
        env = {"DATABASE_URL": database_url, "CDS_DATA_DIR": str(tmp_path / "data")}
        assert run_cli("db", "upgrade", env=env).returncode == 0
    servers = [ServerProcess(env, tmp_path / f"server-{index}.log").start() for index in range(2)]
    try:
        for server in servers:
            server.wait_ready()
        session = requests.Session()
        names = ["06-thiazide-low-k", "04-no-labs", "09-stimulant-cyclobenzaprine", "16-health-anxiety"]

        def call(index: int) -> list[dict]:
            server = servers[index % 2]
            response = session.post(server.base_url + SERVICE_PATH, json=fixture_request(names[index % len(names)]),
                                    timeout=30)
            assert response.status_code == 200, response.text
            return response.json()["cards"]

        with ThreadPoolExecutor(12) as pool:
            cards = [card for batch in pool.map(call, range(60)) for card in batch]
        assert len(cards) > 60 and len({card["uuid"] for card in cards}) == len(cards)

        items = []
        for index, card in enumerate(cards):
            at = f"2026-11-15T10:{index // 60:02d}:{index % 60:02d}Z"
            items.append(accepted(card["uuid"], at) if index % 3 else overridden(card["uuid"], at))
        items.append(accepted("never-issued-card", "2026-11-15T11:00:00Z"))

        def send(index: int) -> int:
            # Every entry goes to both servers, in batches that overlap, from many threads at once.
            server = servers[index % 2]
            batch = items[(index // 2) * 10 % len(items):][:20]
            response = session.post(server.base_url + FEEDBACK_PATH, json={"feedback": batch}, timeout=30)
            return response.status_code

        sends = 2 * (len(items) // 10 + 1) * 2
        with ThreadPoolExecutor(12) as pool:
            statuses = list(pool.map(send, range(sends)))
        assert set(statuses) == {200}
    finally:
        for server in servers:
            server.stop()
    logs = "\n".join(server.log() for server in servers)
    assert "Traceback" not in logs and '"level": "ERROR"' not in logs, logs
    assert row_counts(database_url) == (len(cards), len(items))
