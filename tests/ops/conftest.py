"""Fixtures for the operations tests."""
from __future__ import annotations

import os

import pytest
import redis

from tests.auth.support import OPEN_APPS, LocalServer, new_key

REDIS_URL = os.environ.get("CDS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SUMMARY: list[str] = []  # costs worth seeing in every run's output (the container test's)


def pytest_terminal_summary(terminalreporter):
    for line in SUMMARY:
        terminalreporter.write_line(line)


def require(reachable: bool, message: str) -> None:
    """CI runs PostgreSQL and Redis: there a missing one fails the test, elsewhere it skips."""
    if reachable:
        return
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def redis_or_skip() -> str:
    """The test Redis URL once it answers a ping; skipped (failed under CI) when it does not."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
    except redis.RedisError as error:
        require(False, f"Redis at {REDIS_URL} is not reachable ({type(error).__name__})")
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    return redis_or_skip()


@pytest.fixture(autouse=True)
def close_apps():
    yield
    while OPEN_APPS:
        OPEN_APPS.pop().extensions["fasciculation_cds"].fhir_client.close()


@pytest.fixture(scope="session")
def es384():
    return new_key("ES384")


@pytest.fixture
def local_server():
    server = LocalServer().start()
    yield server
    server.stop()
