"""A client whose key endpoint hangs, flooded with forged tokens, does not slow the other clients down.

The service runs as in production (`fasciculation-cds serve`: gunicorn, one worker of four threads).
Client A's keys are fetched from an https URL that accepts connections and never answers; client B's
key is configured. Sixteen forged tokens for A (trusted iss, right aud, made-up kid) arrive at once,
then B calls ten times. At c2304de each forged token waited for the URL's lock and fetched again, the
four threads were all stuck for the whole fetch timeout and B's calls queued behind them (the red
team measured 9-22 s instead of 2-4 ms): this test FAILS there on both the connection count and B's
latency. Bounds are counts and a generous ceiling, not tight timings.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.auth.support import FIXTURE_FHIR_SERVER, bearer, claims, client_entry, mint, new_key, write_clients
from tests.ops.support import REVIEW_SERVICE, ROOT
from tests.servers import ServiceProcess, production_env

pytestmark = pytest.mark.integration

PUBLIC_BASE = "https://cds.jwks-load.test"
PATH = f"/cds-services/{REVIEW_SERVICE}"
HANGING_ISSUER = "https://hanging-ehr.test"
FETCH_TIME_LIMIT = 5


def test_attack_a_hanging_key_endpoint_does_not_slow_other_clients(tmp_path, hanging_server, es384):
    clients = write_clients(tmp_path, client_entry(iss=HANGING_ISSUER, jwks_url=hanging_server.root + "/jwks"),
                            client_entry(es384, fhir_servers=[FIXTURE_FHIR_SERVER]))
    env = production_env(tmp_path, clients, PUBLIC_BASE, CDS_WORKERS="1", CDS_THREADS="4",
                         CDS_JWKS_FETCH_TIMEOUT_SECONDS=str(FETCH_TIME_LIMIT))
    body = json.loads((ROOT / "fixtures" / "requests" / "01-benign-calf-twitch.json").read_text())
    stranger = new_key("ES384")
    with ServiceProcess("jwks-hang", env, tmp_path) as server:
        server.wait_ready()

        def post(token: str) -> tuple[int, float]:
            started = time.monotonic()
            response = requests.post(server.url + PATH, json=body, headers=bearer(token), timeout=120)
            return response.status_code, time.monotonic() - started

        with ThreadPoolExecutor(16) as pool:
            forged = [pool.submit(post, mint(stranger, claims(iss=HANGING_ISSUER, aud=PUBLIC_BASE + PATH)))
                      for _ in range(16)]
            time.sleep(0.5)  # the forged calls are in: one is waiting on the key endpoint
            other_client = [post(mint(es384, claims(aud=PUBLIC_BASE + PATH))) for _ in range(10)]
            forged_results = [future.result() for future in forged]

    assert [status for status, _ in other_client] == [200] * 10
    assert max(seconds for _, seconds in other_client) < 2.5, other_client
    assert [status for status, _ in forged_results] == [401] * 16
    assert hanging_server.connections == 1  # one attempt, the others answered at once
    assert sum(seconds > 1 for _, seconds in forged_results) <= 1
