"""What the hot path leaves out, and the limits it keeps: behaviour, never timings.

- The patient's card history is read from the store only when a reassurance card is written.
- A chart without a trigger symptom writes nothing to the card log.
- Large calls in one worker run one at a time (memory stays bounded whatever the thread count);
  ordinary calls still run side by side.
"""
from __future__ import annotations

import copy
import threading
import time
from datetime import UTC, datetime

import pytest

import service.protocol as protocol
from hooks.declaration import CardOutcome, DeferredHistory
from service import card_log, create_app
from tests.conftest import make_settings
from tests.store.support import fixture_request as request_for

AS_OF = datetime(2026, 11, 15, 9, 0, tzinfo=UTC)
URL = "/cds-services/fasciculation-cramp-review"


@pytest.fixture
def client():
    return create_app(make_settings(), clock=lambda: AS_OF).test_client()


@pytest.fixture
def history_reads(monkeypatch):
    reads = []
    real = protocol.card_history_for

    def counting(*args, **kwargs):
        reads.append(args)
        return real(*args, **kwargs)
    monkeypatch.setattr(protocol, "card_history_for", counting)
    return reads


def topics(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return sorted(card["source"]["topic"]["code"] for card in response.get_json()["cards"])


def test_the_card_history_is_read_only_for_a_reassurance_card(client, history_reads):
    assert topics(client.post(URL, json=request_for("20-negative-no-symptom"))) == []
    with_cards = topics(client.post(URL, json=request_for("06-thiazide-low-k")))
    assert with_cards and "reassurance" not in with_cards
    assert history_reads == []
    assert topics(client.post(URL, json=request_for("01-benign-calf-twitch"))) == ["reassurance"]
    assert len(history_reads) == 1


def test_a_chart_without_cards_writes_nothing_to_the_card_log(client, monkeypatch):
    writes = []
    with client.application.app_context():
        store = card_log.card_log().store
    monkeypatch.setattr(store, "record_issued_cards", lambda rows: writes.append(list(rows)))
    assert topics(client.post(URL, json=request_for("20-negative-no-symptom"))) == []
    assert writes == []
    assert topics(client.post(URL, json=request_for("01-benign-calf-twitch"))) == ["reassurance"]
    assert len(writes) == 1 and len(writes[0]) == 1


def test_a_deferred_history_loads_once_and_only_when_looked_at():
    loads = []
    outcome = CardOutcome(topic="reassurance", outcome="accepted", outcome_at=AS_OF)

    def load():
        loads.append(1)
        return [outcome]
    history = DeferredHistory(load)
    assert loads == [] and "not loaded" in repr(history)
    assert list(history) == [outcome] and len(history) == 1 and history[0] == outcome
    assert loads == [1]


def test_an_error_reading_the_history_surfaces_inside_the_call():
    def broken():
        raise RuntimeError("store down")
    history = DeferredHistory(broken)
    with pytest.raises(RuntimeError, match="store down"):
        len(history)


def _padded(body: dict, size: int) -> dict:
    """The same request made larger than `size` with an unrelated Observation's narrative."""
    body = copy.deepcopy(body)
    filler = {"resourceType": "Observation", "id": "padding", "status": "final",
              "code": {"text": "unrelated note"}, "valueString": "x" * size}
    body["prefetch"]["observations"]["entry"].append({"resource": filler})
    return body


def _concurrency_of(app, bodies: list[dict], monkeypatch) -> int:
    """The most calls that were inside the handler at once, with each call held there briefly."""
    inside, peak, lock = 0, 0, threading.Lock()
    real = protocol.gather_call_data

    def held(*args, **kwargs):
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
        try:
            time.sleep(0.2)
            return real(*args, **kwargs)
        finally:
            with lock:
                inside -= 1
    monkeypatch.setattr(protocol, "gather_call_data", held)
    statuses = []

    def call(body):
        statuses.append(app.test_client().post(URL, json=body).status_code)
    threads = [threading.Thread(target=call, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert statuses == [200] * len(bodies)
    return peak


def test_large_calls_in_one_process_run_one_at_a_time(monkeypatch):
    app = create_app(make_settings(), clock=lambda: AS_OF)
    large = _padded(request_for("01-benign-calf-twitch"), protocol.LARGE_BODY_BYTES + 1)
    assert _concurrency_of(app, [large] * 3, monkeypatch) == 1


def test_ordinary_calls_still_run_side_by_side(monkeypatch):
    app = create_app(make_settings(), clock=lambda: AS_OF)
    assert _concurrency_of(app, [request_for("01-benign-calf-twitch")] * 3, monkeypatch) > 1
