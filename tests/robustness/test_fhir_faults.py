"""A failing FHIR server, through the real FHIR test server: 412 on time, memory bounded, then recovery.

tests/service/test_fallback_integration.py shows that each fault gives a 412 naming the key. This adds
what an EHR and an operator depend on: the 412 arrives within the deadline plus a small margin
(1 s + 1 s here: a functional bound, not a benchmark), a 50 MB answer is refused under the default
response cap without being held in memory, the process's memory does not grow over repeated faults,
and the next normal call is answered.
"""
from __future__ import annotations

import os
import threading
import time

import pytest

from tests.secrets import secret_token
from tests.servers import rss_of
from tests.service.test_fallback_integration import app_for, assert_412, call, chart, counts

pytestmark = pytest.mark.integration

DEADLINE = 1.0
MARGIN = 1.0
MiB = 1024 * 1024
# fault -> (params, words the 412 must contain); each one fails the `observations` key (the others
# are supplied as null), like every key an EHR leaves out.
FAULTS = {
    "slower than the deadline": ("delay", (3000,), "deadline"),
    "HTTP 500": ("status", (500,), "HTTP 500"),
    "HTTP 401 (token refused)": ("auth", (), "HTTP 401"),
    "HTTP 404": ("status", (404,), "HTTP 404"),
    "malformed JSON": ("malformed", (), "malformed JSON"),
    "HTML instead of FHIR": ("html", (), "non-JSON"),
    "next-link loop": ("loop", (), "loop"),
    "50 MB body": ("huge", (50,), "larger than"),
    "connection reset": ("reset", (), "could not reach"),
}
ONLY_OBSERVATIONS = {"patient": None, "conditions": None}


@pytest.fixture
def loaded(clean_fhir_server):
    clean_fhir_server.load_resources(chart())
    clean_fhir_server.clear_log()
    return clean_fhir_server


@pytest.fixture(scope="module")
def app():
    # The default response cap (CDS_FHIR_MAX_RESPONSE_BYTES, 10 MiB) and page cap; a 1 s deadline.
    app = app_for(fhir_deadline_seconds=DEADLINE)
    yield app
    app.extensions["fasciculation_cds"].fhir_client.close()


def faulty_base(server, kind: str, params: tuple, token: str) -> str:
    if kind == "auth":  # the FHIR server refuses the token the EHR handed over
        return server.auth_base(secret_token())
    return server.fault_base(kind, *params, token=token)


class PeakRss:
    """The highest resident memory of this process while the block runs (sampled every 5 ms)."""

    def __init__(self) -> None:
        self.before = self.peak = rss_of_self()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_of_self())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_of_self())
        self.after = rss_of_self()


def rss_of_self() -> int:
    return rss_of(os.getpid())


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_is_a_412_within_the_deadline_and_the_next_call_is_answered(app, loaded, fault):
    kind, params, reason = FAULTS[fault]
    token = secret_token()
    started = time.monotonic()
    with PeakRss() as memory:
        response = call(app, faulty_base(loaded, kind, params, token), token, ONLY_OBSERVATIONS)
    elapsed = time.monotonic() - started
    assert reason in assert_412(response, "observations")
    assert elapsed < DEADLINE + MARGIN, f"{fault}: 412 after {elapsed:.2f} s"
    # Never more than the response cap (10 MiB) and its copy in memory, whatever the server sends.
    assert memory.peak - memory.before < 40 * MiB, f"{fault}: +{(memory.peak - memory.before) / MiB:.0f} MiB"
    normal = call(app, loaded.auth_base(token), token, ONLY_OBSERVATIONS)
    assert counts(normal)["observations"] == "25"
    print(f"{fault}: 412 in {elapsed * 1000:.0f} ms, peak +{(memory.peak - memory.before) / MiB:.1f} MiB")


def test_memory_does_not_grow_over_repeated_faults(app, loaded):
    token = secret_token()

    def every_fault() -> None:
        for kind, params, _ in FAULTS.values():
            call(app, faulty_base(loaded, kind, params, token), token, ONLY_OBSERVATIONS)
            call(app, loaded.auth_base(token), token, ONLY_OBSERVATIONS)

    every_fault()  # warm-up: connection pools, caches, allocator arenas
    before = rss_of_self()
    for _ in range(3):
        every_fault()
    growth = rss_of_self() - before
    print(f"RSS after 3 more rounds of every fault: {growth / MiB:+.1f} MiB")
    assert growth < 16 * MiB, f"RSS grew by {growth / MiB:.1f} MiB over 3 rounds of faults"
