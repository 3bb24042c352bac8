"""Workers share kept-alive connections: each closes one now and then (service/server_tuning.py)."""
from __future__ import annotations

import os
import threading

import pytest
import requests

from service.server_tuning import ConnectionShedder
from tests.servers import ServiceProcess


def test_a_connection_is_kept_for_at_least_min_calls():
    shedder = ConnectionShedder(min_calls=10, max_calls=100, after_seconds=0.2)
    # Long after the last close, but too few calls: kept.
    assert [shedder.should_close(now=100.0 + i) for i in range(9)] == [False] * 9
    assert shedder.should_close(now=200.0)  # the 10th call, long past after_seconds: closed


def test_a_busy_worker_sheds_by_count_and_an_idle_one_hardly_at_all():
    shedder = ConnectionShedder(min_calls=10, max_calls=100, after_seconds=0.2)
    # 1,000 calls in 0.1 s (no time condition): one close per 100 calls.
    closes = sum(shedder.should_close(now=i / 10_000) for i in range(1000))
    assert closes == 10
    # One call a minute: one close in 10 calls at most, never more.
    idle = ConnectionShedder(min_calls=10, max_calls=100, after_seconds=0.2)
    assert sum(idle.should_close(now=60.0 * i) for i in range(100)) == 10


def test_a_slow_worker_sheds_by_time():
    shedder = ConnectionShedder(min_calls=10, max_calls=100, after_seconds=0.2)
    # 50 calls a second (a 20 ms chart review each): a close every 10 calls, i.e. every 0.2 s.
    closes = sum(shedder.should_close(now=i * 0.02) for i in range(500))
    assert 45 <= closes <= 50


def test_threads_of_one_worker_share_the_count():
    shedder = ConnectionShedder(min_calls=10, max_calls=100, after_seconds=3600)
    results: list[bool] = []

    def calls():
        results.extend(shedder.should_close(now=1.0) for _ in range(2500))
    threads = [threading.Thread(target=calls) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(results) == 100  # 10,000 calls, one close per 100, none lost to a race


@pytest.mark.integration
def test_gunicorn_closes_a_kept_alive_connection_now_and_then(tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "CDS_WORKERS": "2",
           "CDS_THREADS": "2"}
    with ServiceProcess("shedding", env, tmp_path) as server:
        server.wait_ready()
        with requests.Session() as session:
            answers = [session.get(server.url + "/healthz", timeout=10) for _ in range(150)]
    assert all(answer.status_code == 200 for answer in answers)
    closes = sum(answer.headers.get("Connection", "").lower() == "close" for answer in answers)
    # At most one call in ten reconnects; within 100 calls on one worker at least one close.
    assert 1 <= closes <= 15, closes
