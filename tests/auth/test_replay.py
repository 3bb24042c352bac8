"""A jti is accepted once: within one instance, and across instances sharing Redis.

Without Redis the record is in the store's database: tests/store/test_spent_tokens.py.
"""
from __future__ import annotations

import os

import pytest
import redis

from service.auth.replay import RedisReplayCache, _key
from tests.auth.support import SERVICE_PATH, bearer, client_entry, mint, production_app
from tests.conftest import patient_view_request

REDIS_URL = os.environ.get("CDS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="module")
def redis_url():
    """The CI machines run Redis on 127.0.0.1:6379: there its absence fails the test, elsewhere skips it."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
    except redis.RedisError as error:
        message = f"Redis at {REDIS_URL} is not reachable ({type(error).__name__})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL


def call(app, token):
    return app.test_client().post(SERVICE_PATH, json=patient_view_request(), headers=bearer(token))


def test_a_replayed_token_is_refused_by_the_same_instance(tmp_path, es384):
    app = production_app(tmp_path, client_entry(es384))
    token = mint(es384)
    assert call(app, token).status_code == 200
    assert call(app, token).status_code == 401


def test_a_replayed_token_is_refused_by_another_instance_sharing_redis(tmp_path, es384, redis_url):
    first = production_app(tmp_path, client_entry(es384), redis_url=redis_url)
    second = production_app(tmp_path, client_entry(es384), redis_url=redis_url)
    token = mint(es384)
    assert call(first, token).status_code == 200
    assert call(second, token).status_code == 401
    assert call(first, token).status_code == 401
    fresh = mint(es384)
    assert call(second, fresh).status_code == 200


def test_redis_entries_expire_with_the_token(redis_url):
    cache = RedisReplayCache(redis_url, clock=lambda: 1000.0)
    jti = os.urandom(8).hex()
    assert cache.first_use("https://iss.test", jti, expires_at=1002.5)
    ttl_ms = redis.Redis.from_url(redis_url).pttl(RedisReplayCache.KEY_PREFIX + _key("https://iss.test", jti))
    assert 0 < ttl_ms <= 2500
    assert not cache.first_use("https://iss.test", jti, expires_at=1002.5)


def test_unreachable_redis_is_503_not_401_or_500(tmp_path, es384):
    app = production_app(tmp_path, client_entry(es384), redis_url="redis://127.0.0.1:1/0")
    response = call(app, mint(es384))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["issue"][0]["code"] == "transient"
