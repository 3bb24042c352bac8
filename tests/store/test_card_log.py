"""Every issued card is logged with a pseudonymous patient key, cheaply, before the response leaves."""
from __future__ import annotations

import hashlib
import hmac
import statistics
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from cards import KNOWLEDGE_VERSION
from service.store import IssuedCardRow, StoreError, open_store, patient_key, patient_namespace
from service.store.models import IssuedCard
from tests.store.support import SERVICE_ID, SERVICE_PATH, TEST_SECRET, app_for, fixture_request, store_settings


def logged_cards(app) -> list[IssuedCard]:
    store = app.extensions["fasciculation_cds_card_log"].store
    with store.engine.connect() as connection:
        return list(connection.execute(select(IssuedCard).order_by(IssuedCard.id)).all())


def test_every_returned_card_is_logged_with_its_kind_version_and_call(app, client):
    body = fixture_request("06-thiazide-low-k")
    cards = client.post(SERVICE_PATH, json=body).get_json()["cards"]
    rows = logged_cards(app)
    assert len(cards) == 4
    assert sorted((row.card_uuid, row.topic_code, row.topic_display) for row in rows) == sorted(
        (card["uuid"], card["source"]["topic"]["code"], card["source"]["topic"]["display"]) for card in cards)
    for row in rows:
        assert row.service_id == SERVICE_ID
        assert row.knowledge_version == KNOWLEDGE_VERSION
        assert row.hook_instance == body["hookInstance"]
        assert row.issued_at == datetime(2026, 11, 15, 9, 0, tzinfo=UTC)


def test_the_patient_key_is_an_hmac_of_server_and_patient_and_nothing_is_stored_in_clear(tmp_path):
    app = app_for(store_settings(tmp_path))
    body = fixture_request("06-thiazide-low-k", fhirServer="https://EHR.hospital.test/fhir/")
    app.test_client().post(SERVICE_PATH, json=body)
    patient_id = body["context"]["patientId"]
    # An unsigned (development) call: its own namespace, on the fhirServer as sent (service/patient_scope.py).
    expected = hmac.new(TEST_SECRET.encode(), b'[2,"unsigned","https://ehr.hospital.test/fhir"]\x1f' + patient_id.encode(),
                        hashlib.sha256).hexdigest()
    assert {row.patient_key for row in logged_cards(app)} == {expected}
    # Neither the patient id nor the user nor any name reaches the database file.
    app.extensions["fasciculation_cds_card_log"].store.close()
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("fasciculation-cds.sqlite3*"))
    patient_names = [name.get("family") for resource in body["prefetch"].values()
                     if isinstance(resource, dict) and resource.get("resourceType") == "Patient"
                     for name in resource.get("name", [])]
    for secret in [patient_id, body["context"]["userId"], *filter(None, patient_names)]:
        assert secret.encode() not in raw


def test_keys_differ_by_client_by_tenant_by_server_and_by_secret():
    def key(secret=b"k" * 32, **scope):
        return patient_key(secret, patient_namespace(**scope), "123")

    one = key(signed=True, iss="https://ehr.a.test", tenant="t1", fhir_base="https://a.test/fhir")
    assert one == key(signed=True, iss="https://ehr.a.test", tenant="t1", fhir_base="HTTPS://A.TEST/fhir/")
    others = [key(signed=True, iss="https://ehr.b.test", tenant="t1", fhir_base="https://a.test/fhir"),
              key(signed=True, iss="https://ehr.a.test", tenant="t2", fhir_base="https://a.test/fhir"),
              key(signed=True, iss="https://ehr.a.test", tenant=None, fhir_base="https://a.test/fhir"),
              key(signed=True, iss="https://ehr.a.test", tenant="t1", fhir_base="https://b.test/fhir"),
              key(signed=True, iss="https://ehr.a.test", tenant="t1"),
              key(signed=False, fhir_base="https://a.test/fhir"),
              key(b"x" * 32, signed=True, iss="https://ehr.a.test", tenant="t1", fhir_base="https://a.test/fhir")]
    assert len({one, *others}) == len(others) + 1
    # No separator can be smuggled between the parts: the namespace is a JSON array.
    assert key(signed=True, iss='a","b', tenant="") != key(signed=True, iss="a", tenant='b","')
    assert len(one) == 64 and "123" not in one


def test_development_generates_one_secret_per_data_directory_and_warns(tmp_path, caplog):
    settings = store_settings(tmp_path, patient_key_secret=None)
    first = app_for(settings).extensions["fasciculation_cds_card_log"].secret
    second = app_for(settings).extensions["fasciculation_cds_card_log"].secret
    assert first == second and len(first) >= 32
    assert (tmp_path / "patient-key.secret").stat().st_mode & 0o777 == 0o600
    assert any(getattr(r, "event", None) == "development_patient_key_secret" for r in caplog.records)


def test_production_never_falls_back_to_a_generated_secret(tmp_path):
    from service.config import ConfigError
    with pytest.raises(ConfigError, match="^CDS_PATIENT_KEY_SECRET: required when CDS_MODE=production"):
        store_settings(tmp_path, patient_key_secret=None, mode="production",
                       trusted_clients_file="clients.yaml", public_base_url="https://cds.hospital.test")
    assert not (tmp_path / "patient-key.secret").exists()


def test_a_call_without_cards_logs_nothing(app, client):
    response = client.post(SERVICE_PATH, json=fixture_request("20-negative-no-symptom"))
    assert response.get_json() == {"cards": []}
    assert logged_cards(app) == []


def test_cards_that_cannot_be_logged_are_not_returned(app, client):
    store = app.extensions["fasciculation_cds_card_log"].store
    with store.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE issued_cards")
    response = client.post(SERVICE_PATH, json=fixture_request("06-thiazide-low-k"))
    assert response.status_code == 503
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_the_same_card_uuid_is_logged_once(tmp_path):
    store = open_store(store_settings(tmp_path))
    row = IssuedCardRow(str(uuid.uuid4()), SERVICE_ID, "reassurance", None, "v", "h", datetime.now(UTC), None)
    store.record_issued_cards([row])
    store.record_issued_cards([row, row])
    with store.engine.connect() as connection:
        assert len(connection.execute(select(IssuedCard)).all()) == 1
    store.close()


# -- cost on the request path ---------------------------------------------------------------------------

def measure(store, calls: int = 200) -> dict[str, float]:
    """Milliseconds per patient-view's store work: one card-history read and one 3-card log write."""
    now = datetime.now(UTC)
    reads, writes = [], []
    for _ in range(calls):
        key = uuid.uuid4().hex
        started = time.perf_counter()
        store.card_history(SERVICE_ID, key, since=now - timedelta(days=366))
        reads.append((time.perf_counter() - started) * 1000)
        rows = [IssuedCardRow(str(uuid.uuid4()), SERVICE_ID, topic, topic.title(), KNOWLEDGE_VERSION,
                              str(uuid.uuid4()), now, key) for topic in ("workup-incomplete", "cramp-management",
                                                                         "reassurance")]
        started = time.perf_counter()
        store.record_issued_cards(rows)
        writes.append((time.perf_counter() - started) * 1000)

    def summary(values: list[float]) -> tuple[float, float]:
        values = sorted(values[10:])  # without the first calls, which open connections
        return round(statistics.median(values), 3), round(values[int(len(values) * 0.95)], 3)

    (read_p50, read_p95), (write_p50, write_p95) = summary(reads), summary(writes)
    return {"read_p50": read_p50, "read_p95": read_p95, "write_p50": write_p50, "write_p95": write_p95}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_card_log_write_costs_a_few_milliseconds(backend, tmp_path, request, record_property, capsys):
    url = None if backend == "sqlite" else request.getfixturevalue("postgres_url")
    settings = store_settings(tmp_path, url)
    if url:
        from service.store import upgrade_schema
        upgrade_schema(settings)
    store = open_store(settings)
    try:
        figures = measure(store)
    finally:
        store.close()
    for name, value in figures.items():
        record_property(f"{backend}_{name}_ms", value)
    with capsys.disabled():
        print(f"\n[card log cost, {backend}] " + ", ".join(f"{k} {v} ms" for k, v in figures.items()))
    # "No more than a few milliseconds": generous bounds, so a busy CI machine does not flake.
    assert figures["write_p50"] < 10 and figures["read_p50"] < 10, figures


def test_the_card_log_insert_is_compiled_once_not_on_every_call(tmp_path, postgres_url):
    # The dialects' insert().on_conflict_do_nothing() has no cache key in SQLAlchemy 2.0: compiled on
    # every call, it cost a write ~0.25 ms of CPU (docs/performance.md). The text statement is cached.
    # (PostgreSQL's path: on SQLite the insert goes through the driver, see the next test.)
    from sqlalchemy import event
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.engine.interfaces import CacheStats

    assert postgresql.insert(IssuedCard).on_conflict_do_nothing()._generate_cache_key() is None
    from service.store import upgrade_schema
    settings = store_settings(tmp_path, postgres_url)
    upgrade_schema(settings)
    store = open_store(settings)
    inserts = []
    event.listen(store.engine, "after_cursor_execute",
                 lambda conn, cursor, statement, params, context, many:
                 inserts.append(context.cache_hit) if statement.startswith("INSERT") else None)
    try:
        for _ in range(3):
            store.record_issued_cards([IssuedCardRow(
                card_uuid=str(uuid.uuid4()), service_id=SERVICE_ID, topic_code="t", topic_display=None,
                knowledge_version=None, hook_instance="h", issued_at=datetime.now(UTC), patient_key=None)])
    finally:
        store.close()
    assert inserts[1:] == [CacheStats.CACHE_HIT] * 2


def test_on_sqlite_the_card_log_rows_are_written_through_the_driver_as_sqlalchemy_binds_them(tmp_path):
    # Store._write_sqlite skips SQLAlchemy's execution (~0.3 ms of CPU a 4-card write) but binds each
    # value with the column type's own processor: the same text in the database either way.
    import sqlite3

    from sqlalchemy import event, insert

    store = open_store(store_settings(tmp_path))
    executed = []
    event.listen(store.engine, "after_cursor_execute", lambda *args: executed.append(args[2]))
    issued_at = datetime(2026, 12, 5, 4, 50, 1, 123456, tzinfo=timezone(timedelta(hours=2)))

    def row(uuid_: str, suggestions: tuple[str, ...]) -> IssuedCardRow:
        return IssuedCardRow(card_uuid=uuid_, service_id=SERVICE_ID, topic_code="t", topic_display='é "d"',
                             knowledge_version="k", hook_instance="h", issued_at=issued_at, patient_key=None,
                             suggestion_ids=suggestions)
    try:
        store.record_issued_cards([row("driver-0", ()), row("driver-1", ("a", "b"))])
        store.record_issued_cards([row("driver-0", ())])  # a repeat is ignored, as before
        assert executed == []  # nothing went through SQLAlchemy's execution
        with store.engine.begin() as connection:  # the same rows through SQLAlchemy, for comparison
            connection.execute(insert(IssuedCard), [
                {"card_uuid": f"sqlalchemy-{n}", "service_id": SERVICE_ID, "topic_code": "t",
                 "topic_display": 'é "d"', "knowledge_version": "k", "hook_instance": "h", "issued_at": issued_at,
                 "patient_key": None, "suggestion_ids": list(suggestions)}
                for n, suggestions in enumerate([(), ("a", "b")])])
        with pytest.raises(StoreError):  # a bad value is a store error (503), as through SQLAlchemy
            store.record_issued_cards([replace(row("naive", ()), issued_at=datetime(2026, 1, 1))])
    finally:
        store.close()
    database = sqlite3.connect(str(store.target.sqlite_file))
    stored = database.execute("SELECT card_uuid, topic_display, issued_at, suggestion_ids FROM issued_cards "
                              "ORDER BY card_uuid").fetchall()
    database.close()
    assert [values[1:] for values in stored if values[0].startswith("driver-")] == \
        [values[1:] for values in stored if values[0].startswith("sqlalchemy-")] == \
        [('é "d"', "2026-12-05 02:50:01.123456", "[]"), ('é "d"', "2026-12-05 02:50:01.123456", '["a", "b"]')]
