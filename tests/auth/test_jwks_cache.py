"""JWK Sets: cached for a TTL, refetched once for an unknown kid (rotation), bounded, never redirected."""
from __future__ import annotations

import pytest

from service.auth.clients import parse_trusted_clients
from service.auth.jwks import JwksCache, JwksUnavailable, KeyNotFound
from tests.auth.support import ISSUER, new_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def client_for(url, tmp_path):
    return parse_trusted_clients({"clients": [{"iss": ISSUER, "jwks_url": url}]}, base_dir=tmp_path).clients[0]


def cache(clock, **overrides):
    options = {"ttl_seconds": 3600, "timeout_seconds": 1.0, "min_refetch_seconds": 30, "clock": clock}
    return JwksCache(**{**options, **overrides})


def test_an_unknown_kid_makes_one_refetch_so_a_rotated_key_is_found(tmp_path, local_server, clock):
    old, rotated = new_key(), new_key()
    local_server.serve_json("/jwks", old.jwks, content_type="application/json")
    client, keys = client_for(local_server.root + "/jwks", tmp_path), cache(clock)
    assert keys.key_for(client, old.kid, None)["kid"] == old.kid
    local_server.serve_json("/jwks", {"keys": [old.public_jwk, rotated.public_jwk]}, content_type="application/json")
    clock.now += 31
    assert keys.key_for(client, rotated.kid, None)["kid"] == rotated.kid
    assert len(local_server.requests) == 2
    with pytest.raises(KeyNotFound):
        keys.key_for(client, "made-up", None)
    assert len(local_server.requests) == 2  # no refetch within 30 s of the last one
    clock.now += 31
    with pytest.raises(KeyNotFound):
        keys.key_for(client, "made-up", None)
    assert len(local_server.requests) == 3  # one refetch, then KeyNotFound


def test_unknown_kids_do_not_hammer_the_ehr(tmp_path, local_server, clock):
    local_server.serve_json("/jwks", new_key().jwks, content_type="application/json")
    client, keys = client_for(local_server.root + "/jwks", tmp_path), cache(clock)
    for attempt in range(5):
        with pytest.raises(KeyNotFound):
            keys.key_for(client, f"made-up-{attempt}", None)
    assert len(local_server.requests) == 1


def test_the_set_is_fetched_again_after_its_ttl(tmp_path, local_server, clock):
    key = new_key()
    local_server.serve_json("/jwks", key.jwks, content_type="application/json")
    client, keys = client_for(local_server.root + "/jwks", tmp_path), cache(clock)
    keys.key_for(client, key.kid, None)
    clock.now += 3599
    keys.key_for(client, key.kid, None)
    assert len(local_server.requests) == 1
    clock.now += 2
    keys.key_for(client, key.kid, None)
    assert len(local_server.requests) == 2


def test_a_failed_refresh_keeps_the_keys_last_seen(tmp_path, local_server, clock):
    key = new_key()
    local_server.serve_json("/jwks", key.jwks, content_type="application/json")
    client, keys = client_for(local_server.root + "/jwks", tmp_path), cache(clock)
    keys.key_for(client, key.kid, None)
    local_server.serve_json("/jwks", {}, status=503)
    clock.now += 4000
    assert keys.key_for(client, key.kid, None)["kid"] == key.kid


@pytest.mark.parametrize("route", ["status", "redirect", "oversized", "not a set", "not json"])
def test_an_unusable_answer_without_cached_keys_is_unavailable(tmp_path, local_server, other_server, clock, route):
    key = new_key()
    other_server.serve_json("/jwks", key.jwks, content_type="application/json")
    if route == "status":
        local_server.serve_json("/jwks", key.jwks, status=500)
    elif route == "redirect":
        local_server.redirect("/jwks", other_server.root + "/jwks")
    elif route == "oversized":
        local_server.serve_json("/jwks", {"keys": [key.public_jwk], "pad": "x" * 300_000})
    elif route == "not a set":
        local_server.serve_json("/jwks", [key.public_jwk])
    else:
        local_server.routes["/jwks"] = (200, {"Content-Type": "application/json"}, b"{nope")
    client = client_for(local_server.root + "/jwks", tmp_path)
    with pytest.raises(JwksUnavailable):
        cache(clock).key_for(client, key.kid, None)
    assert other_server.requests == []


def test_private_or_foreign_keys_in_a_fetched_set_are_ignored(tmp_path, local_server, clock):
    key = new_key()
    private = {**key.public_jwk, "kid": "with-private-part", "d": "AAAA"}
    encryption = {**new_key().public_jwk, "use": "enc"}
    local_server.serve_json("/jwks", {"keys": [private, encryption, {"kty": "oct", "kid": "k", "k": "c2Vj"}, "junk",
                                               key.public_jwk]}, content_type="application/json")
    client, keys = client_for(local_server.root + "/jwks", tmp_path), cache(clock)
    assert keys.key_for(client, key.kid, None)["kid"] == key.kid
    for kid in ("with-private-part", encryption["kid"], "k"):
        with pytest.raises(KeyNotFound):
            keys.key_for(client, kid, None)


def test_the_tokens_jku_is_used_when_given(tmp_path, local_server, clock):
    key = new_key()
    local_server.serve_json("/from-jku", key.jwks, content_type="application/json")
    client = client_for(local_server.root + "/configured", tmp_path)
    assert cache(clock).key_for(client, key.kid, local_server.root + "/from-jku")["kid"] == key.kid
    assert [r.path for r in local_server.requests] == ["/from-jku"]
