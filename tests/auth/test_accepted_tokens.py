"""Real token shapes are accepted: the CDS Hooks Sandbox's, Epic's, fetched and rotated keys."""
from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.warnings import InsecureKeyLengthWarning

from service.auth import expected_audiences
from service.auth.jwks import JwksCache
from service.client_token import SigningKey
from tests.auth.support import (DISCOVERY_PATH, ISSUER, PUBLIC_BASE, SANDBOX_ISSUER, SANDBOX_JKU, SANDBOX_KID,
                                SERVICE_PATH, app_with, bearer, claims, client_entry, fetching_request, mint,
                                production_app)
from tests.conftest import patient_view_request

PROFILES = Path(__file__).parents[2] / "deploy" / "trusted-clients"


def sandbox_claims(path: str) -> dict:
    now = int(time.time())
    return {"iss": SANDBOX_ISSUER, "aud": PUBLIC_BASE + path, "exp": now + 300, "iat": now,
            "jti": str(uuid.uuid4())}


@pytest.fixture
def sandbox_app(tmp_path, sandbox_shaped_key, monkeypatch):
    """The shipped sandbox profile as is, except that its public key is swapped for ours."""
    profile = yaml.safe_load((PROFILES / "cds-hooks-sandbox.yaml").read_text())
    [entry] = profile["clients"]
    del entry["jwks_file"]
    entry["jwks"] = sandbox_shaped_key.jwks

    def no_network(*args, **kwargs):
        raise AssertionError("the sandbox key is bundled: nothing may be fetched")
    monkeypatch.setattr(JwksCache, "_download", no_network)
    # Production refuses the sandbox unless told, loudly, to trust it (tests/auth/test_production_refusals.py).
    return production_app(tmp_path, entry, insecure_allow_sandbox_in_production=True)


def test_sandbox_token_shape_is_accepted_with_its_profile(sandbox_app, sandbox_shaped_key):
    header = {"jku": SANDBOX_JKU}
    assert sandbox_shaped_key.kid == SANDBOX_KID
    client = sandbox_app.test_client()
    discovery = client.get(DISCOVERY_PATH, headers=bearer(mint(sandbox_shaped_key, sandbox_claims(DISCOVERY_PATH),
                                                                header=header)))
    assert discovery.status_code == 200
    # What the sandbox posts: its open server over http, no fhirAuthorization, prefetch supplied.
    body = patient_view_request(fhirServer="http://launch.smarthealthit.org/v/r4/fhir")
    call = client.post(SERVICE_PATH, json=body,
                       headers=bearer(mint(sandbox_shaped_key, sandbox_claims(SERVICE_PATH), header=header)))
    assert call.status_code == 200, call.get_data(as_text=True)


def test_sandbox_profile_does_not_accept_rs384_or_another_issuer(sandbox_app, sandbox_shaped_key, rs384):
    wrong_issuer = {**sandbox_claims(SERVICE_PATH), "iss": "https://sandbox.cds-hooks.org.attacker.test"}
    response = sandbox_app.test_client().post(
        SERVICE_PATH, json=patient_view_request(), headers=bearer(mint(sandbox_shaped_key, wrong_issuer)))
    assert response.status_code == 401


def test_the_bundled_sandbox_key_is_its_public_es384_key():
    jwks = json.loads((PROFILES / "cds-hooks-sandbox.jwks.json").read_text())
    [key] = jwks["keys"]
    assert key["kid"] == SANDBOX_KID
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-384", "ES384", "sig")
    assert "d" not in key


def test_epic_shape_rs384_with_nbf_before_iat_tenant_and_aud_array(tmp_path, rs384):
    app = production_app(tmp_path, client_entry(rs384, tenant="acme", algorithms=["RS384"]))
    now = int(time.time())
    token = mint(rs384, claims(aud=["https://elsewhere.test", PUBLIC_BASE + SERVICE_PATH], tenant="acme",
                               nbf=now - 300, iat=now, exp=now + 300))
    response = app.test_client().post(SERVICE_PATH, json=patient_view_request(), headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)


def epic_claims(aud: str, **overrides) -> dict:
    """What Epic's CDS Hooks JWT carries (ehr-realities: Epic): nbf about 5 minutes before iat, sub (the
    CDS client id), exp - iat = 900, and an aud the health system typed in by hand."""
    now = int(time.time())
    body = {"iss": ISSUER, "sub": "d45a4d9e-0b2e-4b0d-9a4c-epic-client-id", "aud": aud, "nbf": now - 300, "iat": now,
            "exp": now + 900, "jti": str(uuid.uuid4())}
    body.update(overrides)
    return body


def test_epic_shaped_token_with_a_hand_configured_audience_is_accepted(tmp_path, tls_server, rs384):
    """RS384, a jku fetched over https, nbf, sub, exp - iat = 900 and Epic's own aud, with the default
    settings. FAILS at c2304de: a client could not declare its audience (unknown field `audiences`)."""
    jku = tls_server.root + "/api/epic/2019/Security/Open/PublicKeys/530005/jwks"
    tls_server.serve_json("/api/epic/2019/Security/Open/PublicKeys", rs384.jwks, content_type="application/json")
    epic_aud = "https://cds.hospital.test/epic-fasciculation"  # not .../cds-services/{id}
    app = production_app(tmp_path, client_entry(iss=ISSUER, algorithms=["RS384"], jku=[jku], audiences=[epic_aud]))
    client = app.test_client()
    for path, call in ((SERVICE_PATH, lambda h: client.post(SERVICE_PATH, json=patient_view_request(), headers=h)),
                       (DISCOVERY_PATH, lambda h: client.get(DISCOVERY_PATH, headers=h))):
        response = call(bearer(mint(rs384, epic_claims(epic_aud), header={"jku": jku})))
        assert response.status_code == 200, (path, response.get_data(as_text=True))
    # The URL called is still accepted from that client; any other audience is not, nor from other clients.
    assert client.post(SERVICE_PATH, json=patient_view_request(), headers=bearer(mint(
        rs384, epic_claims(PUBLIC_BASE + SERVICE_PATH), header={"jku": jku}))).status_code == 200
    assert client.post(SERVICE_PATH, json=patient_view_request(), headers=bearer(mint(
        rs384, epic_claims("https://cds.hospital.test/other-vendor"), header={"jku": jku}))).status_code == 401
    assert [r.path for r in tls_server.requests] == ["/api/epic/2019/Security/Open/PublicKeys/530005/jwks"]


def test_a_declared_audience_belongs_to_its_client_only(tmp_path, es384, rs384):
    app = production_app(tmp_path, client_entry(rs384, audiences=["urn:epic:aud"]),
                         client_entry(es384, iss="https://other-ehr.test"))
    token = mint(es384, claims(iss="https://other-ehr.test", aud="urn:epic:aud"))
    assert app.test_client().post(SERVICE_PATH, json=patient_view_request(), headers=bearer(token)).status_code == 401


@pytest.mark.parametrize("lifetime,status", [(300, 200), (900, 200), (901, 401), (3600, 401)])
def test_the_default_maximum_lifetime_is_what_real_clients_need(tmp_path, rs384, lifetime, status):
    """Epic's tokens live 900 s and the sandbox's 300 s; the default maximum is 900 s. FAILS at c2304de
    for 901 and 3600 s (its default was 3600 s, measured from arrival)."""
    app = production_app(tmp_path, client_entry(rs384))
    now = int(time.time())
    token = mint(rs384, claims(iat=now, exp=now + lifetime, nbf=now - 300))
    assert app.test_client().post(SERVICE_PATH, json=patient_view_request(), headers=bearer(token)).status_code == status


def test_the_lifetime_is_what_the_token_declares_so_a_clock_ahead_does_not_refuse_epic(tmp_path, rs384):
    """An EHR clock 60 s ahead: exp - now is 960 s, exp - iat is Epic's 900 s: accepted."""
    app = production_app(tmp_path, client_entry(rs384))
    now = int(time.time()) + 60
    token = mint(rs384, claims(iat=now, exp=now + 900, nbf=now - 300))
    assert app.test_client().post(SERVICE_PATH, json=patient_view_request(), headers=bearer(token)).status_code == 200


def test_success_is_audited_with_iss_tenant_and_jti(tmp_path, rs384, caplog):
    app = production_app(tmp_path, client_entry(rs384, tenant="acme"))
    token = mint(rs384, claims(tenant="acme"))
    caplog.set_level(logging.INFO)
    body = patient_view_request()
    assert app.test_client().post(SERVICE_PATH, json=body, headers=bearer(token)).status_code == 200
    # One line for the call, carrying the authentication: no separate auth_ok line.
    assert not [r for r in caplog.records if getattr(r, "event", None) == "auth_ok"]
    [call] = [r for r in caplog.records if getattr(r, "event", None) == "service_call"]
    jti = json.loads(_b64decode(token.split(".")[1]))["jti"]
    assert (call.iss, call.tenant, call.jti, call.hookInstance) == (ISSUER, "acme", jti, body["hookInstance"])
    assert (call.auth, call.client, call.status) == ("ok", ISSUER + " (acme)", 200)
    # Discovery has no call line of its own: the guard's auth_ok is its line.
    caplog.clear()
    app.test_client().get(DISCOVERY_PATH, headers=bearer(mint(rs384, claims(aud=PUBLIC_BASE + DISCOVERY_PATH,
                                                                          tenant="acme"))))
    [audit] = [r for r in caplog.records if getattr(r, "event", None) in ("auth_ok", "service_call")]
    assert (audit.event, audit.iss, audit.tenant) == ("auth_ok", ISSUER, "acme")
    assert token not in caplog.text


def test_keys_are_fetched_from_an_allowlisted_jku_and_cached(tmp_path, tls_server, es384):
    jku = tls_server.root + "/jwks.json"
    tls_server.serve_json("/jwks.json", es384.jwks, content_type="application/json")
    app = production_app(tmp_path, client_entry(jku=[jku]))
    client = app.test_client()
    for _ in range(3):
        token = mint(es384, header={"jku": jku})
        assert client.post(SERVICE_PATH, json=patient_view_request(), headers=bearer(token)).status_code == 200
    assert [r.path for r in tls_server.requests] == ["/jwks.json"]


def test_keys_are_fetched_from_the_configured_jwks_url_for_tokens_without_jku(tmp_path, tls_server, es384):
    tls_server.serve_json("/keys", es384.jwks, content_type="application/json")
    app = production_app(tmp_path, client_entry(jwks_url=tls_server.root + "/keys"))
    assert app.test_client().get(DISCOVERY_PATH, headers=bearer(
        mint(es384, claims(aud=PUBLIC_BASE + DISCOVERY_PATH)))).status_code == 200


def test_an_unreachable_jwks_is_401_not_500(tmp_path, tls_server, es384):
    jku = tls_server.root + "/gone.json"  # 404
    app = production_app(tmp_path, client_entry(jku=[jku]))
    response = app.test_client().get(DISCOVERY_PATH, headers=bearer(
        mint(es384, claims(aud=PUBLIC_BASE + DISCOVERY_PATH), header={"jku": jku})))
    assert response.status_code == 401


def test_feedback_is_covered_by_the_same_rule_and_accepts_both_audiences(tmp_path, es384):
    app = production_app(tmp_path, client_entry(es384))
    client = app.test_client()
    feedback = SERVICE_PATH + "/feedback"
    body = {"feedback": [{"card": "9f2c6a8e-3f1b-4b53-9d55-0c1d7b0d2a11", "outcome": "overridden",
                          "outcomeTimestamp": "2026-11-15T09:00:00Z"}]}
    assert client.post(feedback, json=body).status_code == 401
    for aud in (PUBLIC_BASE + feedback, PUBLIC_BASE + SERVICE_PATH):
        response = client.post(feedback, json=body, headers=bearer(mint(es384, claims(aud=aud))))
        assert response.status_code == 200, (aud, response.get_data(as_text=True))
    wrong = mint(es384, claims(aud=PUBLIC_BASE + DISCOVERY_PATH))
    assert client.post(feedback, json=body, headers=bearer(wrong)).status_code == 401


def test_expected_audiences():
    base = "https://cds.example.org/prefix"
    assert expected_audiences(base, "/cds-services") == [base + "/cds-services"]
    assert expected_audiences(base, "/cds-services/x") == [base + "/cds-services/x"]
    assert expected_audiences(base, "/cds-services/x/feedback") == [
        base + "/cds-services/x/feedback", base + "/cds-services/x"]


def test_cors_preflight_needs_no_token_and_refusals_carry_cors_headers(tmp_path, es384):
    app = production_app(tmp_path, client_entry(es384))
    client = app.test_client()
    origin = {"Origin": "https://sandbox.cds-hooks.org"}
    preflight = client.options(SERVICE_PATH, headers={**origin, "Access-Control-Request-Method": "POST",
                                                      "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 200
    refused = client.post(SERVICE_PATH, json=patient_view_request(), headers=origin)
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == "*"


def test_tenants_of_one_issuer_are_separate_clients(tmp_path, rs384, local_server):
    a_base = local_server.serve_empty_fhir("/a/fhir")
    b_base = local_server.serve_empty_fhir("/b/fhir")
    app = production_app(
        tmp_path,
        client_entry(rs384, iss="https://cds-hooks.cerner.com", tenant="tenant-a",
                     fhir_servers=[{"url": a_base, "private_network": True}]),
        client_entry(rs384, iss="https://cds-hooks.cerner.com", tenant="tenant-b",
                     fhir_servers=[{"url": b_base, "private_network": True}]))
    client = app.test_client()

    def call(tenant, base):
        token = mint(rs384, claims(iss="https://cds-hooks.cerner.com", tenant=tenant))
        return client.post(SERVICE_PATH, json=fetching_request(base), headers=bearer(token))

    assert call("tenant-a", a_base).status_code == 200
    assert call("tenant-a", b_base).status_code == 403  # tenant b's server is not tenant a's
    assert call("tenant-c", a_base).status_code == 401  # no entry for this tenant
    assert {r.path.split("/")[1] for r in local_server.requests} == {"a"}


# -- development mode ---------------------------------------------------------------------------------

def test_development_mode_serves_unsigned_calls_with_a_warning_at_start_and_on_each_call(caplog):
    caplog.set_level(logging.INFO)
    app = app_with()
    assert any(getattr(r, "event", None) == "development_mode" for r in caplog.records)
    response = app.test_client().post(SERVICE_PATH, json=patient_view_request())
    assert response.status_code == 200
    [warning] = [r for r in caplog.records if getattr(r, "event", None) in ("auth_skipped_development", "service_call")]
    assert warning.levelno == logging.WARNING and "DEVELOPMENT MODE" in warning.getMessage()
    assert (warning.event, warning.auth, warning.auth_reason) == ("service_call", "unsigned", "no Authorization header")
    caplog.clear()
    assert app.test_client().get(DISCOVERY_PATH).status_code == 200
    [warning] = [r for r in caplog.records if getattr(r, "event", None) == "auth_skipped_development"]
    assert warning.levelno == logging.WARNING and warning.reason == "no Authorization header"


def test_development_mode_still_identifies_a_client_whose_token_verifies(tmp_path, es384, local_server):
    """A verified caller gets its own FHIR rules even in development mode."""
    open_base = local_server.serve_empty_fhir()
    path = tmp_path / "clients.json"
    path.write_text(json.dumps({"clients": [client_entry(
        es384, fhir_servers=[{"url": open_base, "without_token": True, "private_network": True}])]}))
    app = app_with(trusted_clients_file=str(path))
    body = fetching_request(open_base, token=False)
    token = mint(es384, claims(aud="http://localhost" + SERVICE_PATH))
    assert app.test_client().post(SERVICE_PATH, json=body).status_code == 412  # unsigned: not an open server
    assert app.test_client().post(SERVICE_PATH, json=body, headers=bearer(token)).status_code == 200


def _b64decode(segment: str) -> bytes:
    import base64
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_a_short_rsa_key_fetched_from_a_jku_is_refused(tmp_path, tls_server):
    """A 1024-bit RSA key is below PyJWT's minimum (2048): the verifier turns that check on
    (enforce_minimum_key_length), so a token signed with such a key, whose JWK Set the client serves,
    is 401. Keys in the trusted-client file are checked at start (test_trusted_clients)."""
    short = SigningKey("RS384", str(uuid.uuid4()), rsa.generate_private_key(public_exponent=65537, key_size=1024))
    jku = tls_server.root + "/short.json"
    tls_server.serve_json("/short.json", short.jwks, content_type="application/json")
    app = production_app(tmp_path, client_entry(iss=ISSUER, algorithms=["RS384"], jku=[jku]))
    with pytest.warns(InsecureKeyLengthWarning):  # signing with it: PyJWT itself calls the key too short
        token = mint(short, claims(aud=PUBLIC_BASE + DISCOVERY_PATH), header={"jku": jku})
    response = app.test_client().get(DISCOVERY_PATH, headers=bearer(token))
    assert response.status_code == 401
    assert response.get_json()["resourceType"] == "OperationOutcome"
