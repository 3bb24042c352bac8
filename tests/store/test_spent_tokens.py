"""Without Redis, a JWT is still single-use across gunicorn workers and replicas: the spent `jti`s
are kept in the service's database (the card-log store), on SQLite and on PostgreSQL.

Red-team finding (issue 15, item 6): each worker kept its own jti set, so a captured token was
accepted once per worker. The tests marked "attack" FAIL on the code at c2304de.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import OperationalError

from service.auth.replay import DatabaseReplayCache, _key
from service.store.models import SpentToken
from tests.auth.support import PUBLIC_BASE, SERVICE_PATH, bearer, client_entry, mint, new_key, write_clients
from tests.conftest import PROBE_SERVICE, patient_view_request
from tests.servers import ServiceProcess, production_env
from tests.store.support import ROOT, app_for, store_settings

KEY = new_key("ES384")


def production(tmp_path, database_url: str | None = None, **changes):
    clients = write_clients(tmp_path, client_entry(KEY))
    settings = store_settings(tmp_path / "data", database_url, mode="production", public_base_url=PUBLIC_BASE,
                              trusted_clients_file=str(clients), **changes)
    return app_for(settings, services=[PROBE_SERVICE])


def call(app, token: str) -> int:
    return app.test_client().post(SERVICE_PATH, json=patient_view_request(), headers=bearer(token)).status_code


def spent_rows(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(SpentToken))
    finally:
        engine.dispose()


def test_attack_a_token_replayed_to_another_instance_on_the_same_database_is_refused(ready_database_url, tmp_path):
    """Two app instances (two workers, or two replicas) on one database, no Redis. c2304de: both 200."""
    first, second = production(tmp_path, ready_database_url), production(tmp_path, ready_database_url)
    token = mint(KEY)
    assert call(first, token) == 200
    assert call(second, token) == 401
    assert call(first, token) == 401
    assert call(second, mint(KEY)) == 200
    assert spent_rows(ready_database_url) == 2


def test_attack_two_processes_racing_with_the_same_tokens_accept_each_once(ready_database_url, tmp_path):
    """Two processes post the same 30 tokens at the same moment: every token is accepted exactly once.
    c2304de: every token twice."""
    tokens = [mint(KEY) for _ in range(30)]
    clients = write_clients(tmp_path, client_entry(KEY))
    settings = {"mode": "production", "public_base_url": PUBLIC_BASE, "trusted_clients_file": str(clients),
                "database_url": ready_database_url, "data_dir": str(tmp_path / "data"),
                "patient_key_secret": os.urandom(32).hex(), "log_level": "ERROR"}
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    (tmp_path / "tokens.json").write_text(json.dumps(tokens))
    go = tmp_path / "go"
    racers = [subprocess.Popen([sys.executable, "-m", "tests.store.replay_race", str(tmp_path / "settings.json"),
                                str(tmp_path / "tokens.json"), str(go)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(1.5)  # both have built their app and are waiting
    go.touch()
    results = []
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    for index in range(len(tokens)):
        assert sorted(result[index] for result in results) == [200, 401], index


@pytest.mark.integration
def test_attack_gunicorn_workers_on_the_embedded_default_accept_a_token_once(tmp_path):
    """`fasciculation-cds serve` with 4 workers, no REDIS_URL, no DATABASE_URL: the same token sent 40
    times at once, on 40 connections spread over the workers, is accepted once. c2304de: once per
    worker that took one (the red team's replayed sandbox token)."""
    key = new_key("ES384")
    clients = write_clients(tmp_path, client_entry(key, fhir_servers=["https://ehr.example.org/fhir/R4"]))
    env = production_env(tmp_path, clients, PUBLIC_BASE, CDS_WORKERS="4", CDS_THREADS="1")
    body = json.loads((ROOT / "fixtures" / "requests" / "01-benign-calf-twitch.json").read_text())
    path = "/cds-services/fasciculation-cramp-review"
    token = mint(key, {"iss": "https://ehr.hospital.test", "aud": PUBLIC_BASE + path, "iat": int(time.time()),
                       "exp": int(time.time()) + 300, "jti": os.urandom(8).hex()})

    def send(_: int) -> int:
        return requests.post(server.url + path, json=body, headers={**bearer(token), "Connection": "close"},
                             timeout=60).status_code

    with ServiceProcess("replay", env, tmp_path) as server:
        server.wait_ready()
        with ThreadPoolExecutor(40) as pool:
            statuses = list(pool.map(send, range(40)))
        workers = len(server.worker_pids())
    assert workers == 4
    assert sorted(statuses) == [200] + [401] * 39


def test_records_expire_with_their_token_and_are_deleted(ready_database_url, tmp_path):
    app = production(tmp_path, ready_database_url)
    store = app.extensions["fasciculation_cds_card_log"].store
    assert store.spend_token("k1", expires_at=1_000, now=900)
    assert not store.spend_token("k1", expires_at=1_000, now=950)
    assert store.spend_token("k2", expires_at=2_000, now=950)
    # Once its token has expired the record no longer blocks the jti (the token itself is refused as expired).
    assert store.spend_token("k1", expires_at=1_500, now=1_001)
    assert not store.spend_token("k1", expires_at=1_500, now=1_002)
    assert store.forget_spent_tokens(now=1_600) == 1  # k1 gone, k2 kept
    assert spent_rows(ready_database_url) == 1


def test_the_cache_deletes_expired_records_now_and_then(tmp_path):
    app = production(tmp_path)
    store = app.extensions["fasciculation_cds_card_log"].store
    now = [10_000.0]
    cache = DatabaseReplayCache(store, clock=lambda: now[0])
    assert cache.first_use("iss", "a", expires_at=10_010)
    assert not cache.first_use("iss", "a", expires_at=10_010)
    assert cache.first_use("other-iss", "a", expires_at=10_010)  # a jti is unique per issuer only
    now[0] = 10_030.0  # both expired, but the last purge (at the first call) is under a minute old
    assert cache.first_use("iss", "b", expires_at=10_500)
    assert _rows(store) == 3
    now[0] = 10_000.0 + DatabaseReplayCache.PURGE_INTERVAL_SECONDS + 1
    assert cache.first_use("iss", "c", expires_at=10_500)
    assert _rows(store) == 2  # b and c
    assert len(_key("iss", "c")) == 64


def test_spending_a_token_leaves_the_card_log_writes_at_the_stores_durability(tmp_path):
    """The spent-jti commit and the card log's share one setting (WAL, synchronous=NORMAL on SQLite:
    issue 14's durability decision): spending a token never changes a pooled connection's."""
    store = production(tmp_path).extensions["fasciculation_cds_card_log"].store
    for index in range(5):
        assert store.spend_token(f"k{index}", expires_at=2_000, now=1_000)
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL (FULL is 2)


def _rows(store) -> int:
    with store.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(SpentToken))


def test_a_database_that_fails_is_503_not_401_or_500(tmp_path, monkeypatch):
    app = production(tmp_path)
    store = app.extensions["fasciculation_cds_card_log"].store

    def broken(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))
    monkeypatch.setattr(store, "spend_token", broken)
    response = app.test_client().post(SERVICE_PATH, json=patient_view_request(), headers=bearer(mint(KEY)))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
