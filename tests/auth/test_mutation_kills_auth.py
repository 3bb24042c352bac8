"""Tests written for mutants of service/auth/ that survived the suite (docs/mutation.md, "Results")."""
from __future__ import annotations

import json

import pytest

from service.auth import load_trusted_clients
from service.auth.clients import normalise_base_url
from service.auth.jwks import JwksCache, _usable_public_key
from service.auth.replay import RedisReplayCache
from tests.auth.support import client_entry, config_refusal, new_key

KEY = new_key("ES384")


@pytest.mark.parametrize("url, normal", [
    ("HTTP://FHIR.Hospital.test:80/R4/", "http://fhir.hospital.test/R4"),
    ("https://fhir.hospital.test:443/R4", "https://fhir.hospital.test/R4"),
    ("http://fhir.hospital.test:8080/R4", "http://fhir.hospital.test:8080/R4"),
])
def test_a_default_port_is_dropped_for_http_and_https(url, normal):
    """clients.normalise_base_url: the default port of each scheme (kills the misspelt "http" key)."""
    assert normalise_base_url(url) == normal


@pytest.mark.parametrize("url", ["https://fhir.hospital.test/R4?tenant=a", "https://fhir.hospital.test/R4#top"])
def test_a_fhir_server_url_with_a_query_or_fragment_is_refused_saying_why(tmp_path, url):
    """clients._grant: the refusal names the rule (kills the message replaced by None)."""
    path = tmp_path / "clients.json"
    path.write_text(json.dumps({"clients": [client_entry(KEY, fhir_servers=[url])]}))
    assert "fhir_servers[0].url must be a FHIR base URL without query or fragment" in \
        config_refusal(load_trusted_clients, path)


def test_a_public_key_without_use_is_a_signing_key():
    """jwks._usable_public_key: "use" is optional (RFC 7517) and means "sig" when absent; "enc" keys are not
    used to verify tokens (kills dropping the default)."""
    public = {key: value for key, value in KEY.public_jwk.items() if key != "use"}
    assert _usable_public_key(public)
    assert _usable_public_key({**public, "use": "sig"})
    assert not _usable_public_key({**public, "use": "enc"})


class _Raw:
    def __init__(self, chunks: list[bytes]):
        self._chunks = list(chunks)

    def read1(self, size: int, decode_content: bool = True) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""


class _Response:
    def __init__(self, chunks: list[bytes]):
        self.raw = _Raw(chunks)


def test_a_jwk_set_that_arrives_in_several_reads_is_joined_byte_for_byte():
    """jwks.JwksCache._read_capped: the chunks of a slow or large response are concatenated as they came (kills
    joining them with a separator)."""
    body = json.dumps({"keys": [KEY.public_jwk]}).encode()
    cache = JwksCache(ttl_seconds=60, timeout_seconds=5)
    assert cache._read_capped(_Response([body[:10], body[10:25], body[25:]])) == body


def test_the_redis_replay_cache_bounds_connecting_as_well_as_each_command():
    """replay.RedisReplayCache: an unreachable Redis fails within the timeout instead of the OS connect
    timeout (kills socket_connect_timeout=None). No connection is made here."""
    cache = RedisReplayCache("redis://127.0.0.1:6379/0", timeout_seconds=0.5)
    options = cache._redis.connection_pool.connection_kwargs
    assert options["socket_connect_timeout"] == 0.5 and options["socket_timeout"] == 0.5


def test_a_list_with_an_empty_string_is_refused_saying_why(tmp_path):
    """clients._string_list: the refusal names the field and the rule (kills the message replaced by None)."""
    path = tmp_path / "clients.json"
    path.write_text(json.dumps({"clients": [client_entry(KEY, algorithms=["ES384", ""])]}))
    assert config_refusal(load_trusted_clients, path).endswith(
        "clients[0].algorithms must be a list of non-empty strings")
