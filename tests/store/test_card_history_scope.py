"""A patient's card history belongs to the client that signed the calls and the FHIR base it registered.

Red-team finding (issue 15, item 1): the pseudonymous patient key came from the request's
`fhirServer`, which was checked against the caller's registration only when something had to be
fetched. With full prefetch, one trusted client naming another hospital's FHIR base read and changed
that hospital's card history ("reassurance was given on ..."); calls naming neither a server nor a
tenant all shared one namespace. The tests marked "attack" FAIL on the code at c2304de.
"""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.auth.support import bearer, claims, client_entry, mint, new_key, write_clients
from tests.store.support import (FEEDBACK_PATH, SERVICE_PATH, TEST_SECRET, accepted, app_for, fixture_request,
                                 store_settings)

NOW = datetime(2026, 11, 15, 9, 0, tzinfo=UTC)
BENIGN = "01-benign-calf-twitch"
PUBLIC_BASE = "https://cds.hospital.test"
HOSPITAL_A = "https://fhir.hospital-a.test/R4"
HOSPITAL_B = "https://fhir.hospital-b.test/R4"
ISS_A, ISS_B = "https://ehr.hospital-a.test", "https://ehr.hospital-b.test"
ORACLE = "https://cds-hooks.cerner.com"
KEY = new_key("ES384")


@pytest.fixture
def app(tmp_path):
    clients = write_clients(
        tmp_path,
        client_entry(KEY, iss=ISS_A, fhir_servers=[HOSPITAL_A]),
        client_entry(KEY, iss=ISS_B, fhir_servers=[HOSPITAL_B]),
        # One issuer for many health systems, told apart by tenant (Oracle Health), no fhirServer needed.
        client_entry(KEY, iss=ORACLE))
    settings = store_settings(tmp_path, mode="production", public_base_url=PUBLIC_BASE,
                              trusted_clients_file=str(clients), patient_key_secret=TEST_SECRET)
    return app_for(settings, clock=lambda: NOW)


def token(iss: str, path: str = SERVICE_PATH, tenant: str | None = None) -> dict[str, str]:
    extra = {"tenant": tenant} if tenant else {}
    return bearer(mint(KEY, claims(iss=iss, aud=PUBLIC_BASE + path, **extra)))


def chart(app, iss: str, fhir_server: str | None, tenant: str | None = None):
    body = fixture_request(BENIGN)
    if fhir_server is None:
        del body["fhirServer"]
    else:
        body["fhirServer"] = fhir_server
    return app.test_client().post(SERVICE_PATH, json=body, headers=token(iss, tenant=tenant))


def reassurance(response) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)
    (card,) = [card for card in response.get_json()["cards"] if card["source"]["topic"]["code"] == "reassurance"]
    return card


def accept(app, iss: str, card: dict, tenant: str | None = None) -> None:
    response = app.test_client().post(FEEDBACK_PATH, json={"feedback": [accepted(card["uuid"], "2026-11-10T09:00:00Z")]},
                                      headers=token(iss, FEEDBACK_PATH, tenant))
    assert response.status_code == 200, response.get_data(as_text=True)


def is_reminder(card: dict) -> bool:
    return "was given on" in card["summary"]


def test_the_history_of_the_registered_base_is_kept(app):
    accept(app, ISS_A, reassurance(chart(app, ISS_A, HOSPITAL_A)))
    assert is_reminder(reassurance(chart(app, ISS_A, HOSPITAL_A)))
    # The same base however the EHR spells it.
    assert is_reminder(reassurance(chart(app, ISS_A, "HTTPS://FHIR.Hospital-A.test:443/R4/")))


def test_attack_another_client_naming_a_foreign_base_with_full_prefetch_is_refused(app):
    """Client B names hospital A's FHIR base; nothing needs fetching. c2304de: 200, and B saw
    "reassurance was given on ..." from A's history and wrote its cards into it."""
    accept(app, ISS_A, reassurance(chart(app, ISS_A, HOSPITAL_A)))
    refused = chart(app, ISS_B, HOSPITAL_A)
    assert refused.status_code == 403
    [issue] = refused.get_json()["issue"]
    assert issue["code"] == "forbidden" and issue["expression"] == ["fhirServer"]
    assert "not a FHIR server registered for this CDS client" in issue["diagnostics"]
    # A's history is A's alone, and unchanged by B's attempt.
    assert is_reminder(reassurance(chart(app, ISS_A, HOSPITAL_A)))
    assert not is_reminder(reassurance(chart(app, ISS_B, HOSPITAL_B)))


def test_attack_calls_without_fhir_server_or_tenant_do_not_share_a_history_across_clients(app):
    """Same patient id at two hospitals, neither call naming a server or tenant. c2304de: one shared
    namespace, so B's patient got A's reminder."""
    accept(app, ISS_A, reassurance(chart(app, ISS_A, None)))
    assert is_reminder(reassurance(chart(app, ISS_A, None)))
    assert not is_reminder(reassurance(chart(app, ISS_B, None)))


def test_tenants_of_one_issuer_have_separate_histories(app):
    accept(app, ORACLE, reassurance(chart(app, ORACLE, None, tenant="tenant-1")), tenant="tenant-1")
    assert is_reminder(reassurance(chart(app, ORACLE, None, tenant="tenant-1")))
    assert not is_reminder(reassurance(chart(app, ORACLE, None, tenant="tenant-2")))


def test_a_named_base_and_no_base_are_separate_histories(app):
    accept(app, ISS_A, reassurance(chart(app, ISS_A, HOSPITAL_A)))
    assert not is_reminder(reassurance(chart(app, ISS_A, None)))


def test_unsigned_development_calls_never_reach_a_signed_clients_history(tmp_path):
    clients = write_clients(tmp_path, client_entry(KEY, iss=ISS_A, fhir_servers=[HOSPITAL_A]))
    app = app_for(store_settings(tmp_path, trusted_clients_file=str(clients), public_base_url=PUBLIC_BASE),
                  clock=lambda: NOW)
    accept(app, ISS_A, reassurance(chart(app, ISS_A, HOSPITAL_A)))
    unsigned = fixture_request(BENIGN, fhirServer=HOSPITAL_A)
    assert not is_reminder(reassurance(app.test_client().post(SERVICE_PATH, json=unsigned)))
    # ... while unsigned calls keep a history of their own, on the fhirServer as sent.
    card = reassurance(app.test_client().post(SERVICE_PATH, json=unsigned))
    app.test_client().post(FEEDBACK_PATH, json={"feedback": [accepted(card["uuid"], "2026-11-10T09:00:00Z")]})
    assert is_reminder(reassurance(app.test_client().post(SERVICE_PATH, json=fixture_request(BENIGN, fhirServer=HOSPITAL_A))))


def test_upgrading_clears_the_patient_keys_of_the_old_scheme_and_keeps_the_cards(database_url):
    """Migration 0003: old keys (request's fhirServer or tenant) can match nothing now; the cards stay."""
    from sqlalchemy import create_engine, text

    from service.store.migrate import upgrade
    engine = create_engine(database_url)
    try:
        upgrade(engine, "0001")
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO issued_cards (card_uuid, service_id, topic_code, hook_instance, issued_at, patient_key) "
                "VALUES ('c-1', 'svc', 'reassurance', 'h-1', :at, :key)"), {"at": NOW, "key": "ab" * 32})
        upgrade(engine)
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT card_uuid, topic_code, patient_key FROM issued_cards")).all()
        assert [tuple(row) for row in rows] == [("c-1", "reassurance", None)]
    finally:
        engine.dispose()
