"""JWK Sets: cached for a TTL, refetched once for an unknown kid (rotation), bounded, never redirected."""
from __future__ import annotations

import threading
import time

import pytest

from service.auth.clients import parse_trusted_clients
from service.auth.jwks import JwksCache, JwksUnavailable, KeyNotFound
from tests.auth.support import ISSUER, TricklingServer, new_key


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
    # 5 s: a fetch from the local server must not time out on a loaded 2-core CI machine (at 1 s it did,
    # and the cache then rightly answered "a fetch is in progress"); tests of the time limit set their own.
    options = {"ttl_seconds": 3600, "timeout_seconds": 5.0, "min_refetch_seconds": 30, "clock": clock}
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


# -- forged tokens must not drive fetching (issue 15, item 2) ---------------------------------------
# A forged token needs only a trusted iss, the right aud and any kid: each of these calls is what one
# such token costs. Every test here FAILS on the code at c2304de.

def forged_lookups(keys, client, count: int) -> None:
    for attempt in range(count):
        with pytest.raises((KeyNotFound, JwksUnavailable)):
            keys.key_for(client, f"forged-{attempt}", None)


def test_attack_a_set_never_fetched_is_not_refetched_for_every_forged_token(tmp_path, local_server, clock):
    """100 forged tokens against a failing key endpoint: one fetch, not 100 (c2304de: 100)."""
    local_server.serve_json("/jwks", {}, status=500)
    client, keys = client_for(local_server.root + "/jwks", tmp_path), cache(clock)
    forged_lookups(keys, client, 100)
    assert len(local_server.requests) == 1


def test_attack_a_failed_refresh_does_not_lift_the_rate_limit(tmp_path, local_server, clock):
    """Keys fetched once, then the endpoint fails: 50 forged kids after the failed refresh fetch nothing
    more (c2304de: the failure reset the 30 s limit, so each one refetched)."""
    key = new_key()
    local_server.serve_json("/jwks", key.jwks, content_type="application/json")
    client, keys = client_for(local_server.root + "/jwks", tmp_path), cache(clock)
    assert keys.key_for(client, key.kid, None)["kid"] == key.kid
    local_server.serve_json("/jwks", {}, status=503)
    clock.now += 31
    forged_lookups(keys, client, 50)
    assert len(local_server.requests) == 2  # the first fetch and one failed refresh
    assert keys.key_for(client, key.kid, None)["kid"] == key.kid  # the known key still verifies


def test_failures_are_remembered_with_a_doubling_back_off(tmp_path, local_server, clock):
    local_server.serve_json("/jwks", {}, status=500)
    client, keys = client_for(local_server.root + "/jwks", tmp_path), cache(clock)
    attempts = []
    for at in (0, 10, 31, 62, 122, 153, 183, 304, 544):  # seconds since the first lookup
        clock.now = 1000.0 + at
        forged_lookups(keys, client, 3)
        attempts.append(len(local_server.requests))
    # Attempts at t=0, then after back-offs of 30 s (t=31), 60 s (t=122), 120 s (t=304), 240 s (t=544).
    assert attempts == [1, 1, 2, 2, 3, 3, 3, 4, 5]


def test_a_successful_fetch_ends_the_back_off(tmp_path, local_server, clock):
    key = new_key()
    local_server.serve_json("/jwks", {}, status=500)
    client, keys = client_for(local_server.root + "/jwks", tmp_path), cache(clock)
    forged_lookups(keys, client, 1)
    local_server.serve_json("/jwks", key.jwks, content_type="application/json")
    clock.now += 31
    assert keys.key_for(client, key.kid, None)["kid"] == key.kid
    local_server.serve_json("/jwks", {}, status=500)
    clock.now += 31
    forged_lookups(keys, client, 1)  # a failure after a success backs off 30 s again, not 60
    clock.now += 31
    forged_lookups(keys, client, 1)
    assert len(local_server.requests) == 4


def test_attack_one_fetch_in_flight_per_url_and_the_others_answered_at_once(tmp_path, hanging_server):
    """16 forged tokens at once against a key endpoint that never answers: one connection, one caller
    waits out the time limit, the 15 others are refused at once (c2304de: each took its turn on the
    URL's lock and downloaded again: 16 connections, the last caller waiting 16 time limits)."""
    client = client_for(hanging_server.root + "/jwks", tmp_path)
    keys = JwksCache(ttl_seconds=3600, timeout_seconds=1.5)
    durations: list[float] = []

    def forged(index: int) -> None:
        started = time.monotonic()
        with pytest.raises(JwksUnavailable):
            keys.key_for(client, f"forged-{index}", None)
        durations.append(time.monotonic() - started)

    threads = [threading.Thread(target=forged, args=(index,)) for index in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(durations) == 16
    assert hanging_server.connections == 1
    assert sum(duration > 1.0 for duration in durations) <= 1  # only the caller that started the fetch waits
    assert max(durations) < 6  # generous: the time limit is 1.5 s


def test_attack_an_attempt_is_capped_in_time_even_when_every_read_succeeds(tmp_path):
    """A key endpoint that trickles its headers a byte at a time never trips a per-read timeout; the
    caller still gets its answer after the time limit (c2304de waited for the whole trickle: 12 s here, and as long as the server likes)."""
    server = TricklingServer(interval=0.2).start()
    try:
        client = client_for(server.root + "/jwks", tmp_path)
        keys = JwksCache(ttl_seconds=3600, timeout_seconds=1.0)
        started = time.monotonic()
        with pytest.raises(JwksUnavailable):
            keys.key_for(client, "any", None)
        assert time.monotonic() - started < 4  # generous: the time limit is 1 s
    finally:
        server.stop()
