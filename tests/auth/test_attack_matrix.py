"""Every forged, stale or misdirected token is refused with 401, and nothing is fetched.

Each call names a FHIR server the client may use and supplies no prefetch, so a call that got
through would query it: the local server's request log proves that none did.
"""
from __future__ import annotations

import base64
import json
import logging
import time

import pytest

from tests.auth.support import (DISCOVERY_PATH, DROP, ISSUER, PUBLIC_BASE, SERVICE_PATH, b64, bearer, claims,
                                client_entry, fetching_request, issued, mint, new_key, production_app,
                                raw_token)
from tests.conftest import patient_view_request

# attack -> the reason the log must give (the caller is told none of them)
ATTACKS = {
    "alg none": "alg 'none' is never accepted",
    "HS256 signed with the public key": "symmetric (HMAC)",
    "wrong aud": "aud is not the URL that was called",
    "aud of another service": "aud is not the URL that was called",
    "expired": "token has expired",
    "nbf in the future": "not valid yet (nbf)",
    "iat in the future": "issued in the future (iat)",
    "missing kid": "kid is missing",
    "unknown kid": "kid is not a key of this client",
    "jku not allowlisted": "jku is not on the client's allowlist",
    "untrusted iss": "is not a trusted client",
    "tampered signature": "signature does not verify",
    "tampered claims": "signature does not verify",
    "missing jti": "jti is missing",
    "missing exp": "exp is missing or not a number",
    "typ not JWT": "typ is not JWT",
    "alg not allowed for the client": "alg ES256 is not allowed for this client",
    "key of another client": "kid is not a key of this client",
    "lifetime too long": "lives longer than the accepted maximum",
}


@pytest.fixture
def setup(tmp_path, local_server, es384):
    fhir_base = local_server.serve_empty_fhir()
    local_server.serve_json("/evil-jwks.json", new_key("ES384", kid=es384.kid).jwks)
    other = new_key("ES384")
    app = production_app(
        tmp_path,
        client_entry(es384, jku=[local_server.root.replace("http:", "https:") + "/allowed-jwks.json"],
                     fhir_servers=[{"url": fhir_base, "private_network": True}]),
        client_entry(other, iss="https://other-ehr.test"))
    return app, fhir_base, local_server, other


def forge(attack: str, key, other, server, path: str = SERVICE_PATH) -> str:
    def c(**overrides):  # claims for the endpoint called
        return claims(**{"aud": PUBLIC_BASE + path, **overrides})

    good_header = {"alg": "ES384", "typ": "JWT", "kid": key.kid}
    if attack == "alg none":
        return raw_token({**good_header, "alg": "none"}, c())
    if attack == "HS256 signed with the public key":
        # The classic key-confusion forgery: HMAC keyed with the verifier's public key.
        public_jwk = json.dumps(key.public_jwk).encode()
        return raw_token({**good_header, "alg": "HS256"}, c(), hmac_key=public_jwk)
    if attack == "wrong aud":
        return mint(key, c(aud="https://attacker.test/cds-services/probe"))
    if attack == "aud of another service":
        return mint(key, c(aud=PUBLIC_BASE + "/cds-services/another-service"))
    if attack == "expired":
        return mint(key, c(exp=_now() - 301, iat=_now() - 900))
    if attack == "nbf in the future":
        return mint(key, c(nbf=_now() + 900, exp=_now() + 1200))
    if attack == "iat in the future":
        return mint(key, c(iat=_now() + 900, exp=_now() + 1200))
    if attack == "missing kid":
        return mint(key, c(), header={"kid": DROP})
    if attack == "unknown kid":
        return mint(key, c(), header={"kid": "no-such-kid"})
    if attack == "jku not allowlisted":
        # The attacker's JWK Set holds a key under the trusted kid: fetching it would be fatal.
        return mint(new_key("ES384", kid=key.kid), c(), header={"jku": server.root + "/evil-jwks.json"})
    if attack == "untrusted iss":
        return mint(key, c(iss="https://attacker.test"))
    if attack == "tampered signature":
        head, body, signature = mint(key, c()).split(".")
        raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
        raw[10] ^= 0x01
        return issued(f"{head}.{body}.{b64(bytes(raw))}")
    if attack == "tampered claims":
        head, _, signature = mint(key, c()).split(".")
        forged = b64(json.dumps(c(iss=ISSUER, tenant="someone-else")).encode())
        return issued(f"{head}.{forged}.{signature}")
    if attack == "missing jti":
        return mint(key, c(jti=DROP))
    if attack == "missing exp":
        return mint(key, c(exp=DROP))
    if attack == "typ not JWT":
        return mint(key, c(), header={"typ": "at+jwt"})
    if attack == "alg not allowed for the client":
        es256 = new_key("ES256", kid=key.kid)
        return mint(es256, c())
    if attack == "key of another client":
        return mint(other, c())  # signed by a trusted key, but claiming our client's iss
    if attack == "lifetime too long":
        return mint(key, c(exp=_now() + 7 * 86400))
    raise AssertionError(attack)


def _now() -> int:
    return int(time.time())


def assert_refused(response, *, token_sent: bool = True):
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.mimetype == "application/fhir+json"
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert [issue["code"] for issue in outcome["issue"]] == ["login"]
    expected = 'Bearer error="invalid_token"' if token_sent else "Bearer"
    assert response.headers["WWW-Authenticate"] == expected
    return outcome


ENDPOINTS = {"service call": ("POST", SERVICE_PATH), "discovery": ("GET", DISCOVERY_PATH)}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_is_refused_and_nothing_is_fetched(setup, es384, attack, endpoint, caplog):
    app, fhir_base, server, other = setup
    method, path = ENDPOINTS[endpoint]
    token = forge(attack, es384, other, server, path)
    caplog.set_level(logging.DEBUG)
    response = app.test_client().open(path, method=method, headers=bearer(token),
                                      json=fetching_request(fhir_base) if method == "POST" else None)
    outcome = assert_refused(response)
    assert outcome["issue"][0]["diagnostics"] == (
        "Authentication failed. Calls must carry a valid CDS Hooks JWT (Authorization: Bearer) "
        "from a registered CDS client.")
    # One line per call: a service call's carries the refusal; discovery's is the guard's auth_failed.
    [line] = [r for r in caplog.records if getattr(r, "event", None) in ("auth_failed", "service_call")]
    reason = line.auth_reason if line.event == "service_call" else line.reason
    assert ATTACKS[attack] in reason
    assert server.requests == [], f"{attack}: something was fetched"
    assert token not in caplog.text
    assert all(token not in repr(record.__dict__) for record in caplog.records)


@pytest.mark.parametrize("path", [SERVICE_PATH, DISCOVERY_PATH])
def test_the_same_forged_shapes_signed_properly_are_accepted(setup, es384, path):
    """Control for the matrix: the untampered token for that endpoint gets through."""
    app, fhir_base, server, _ = setup
    token = mint(es384, claims(aud=PUBLIC_BASE + path))
    client = app.test_client()
    response = (client.post(path, json=fetching_request(fhir_base), headers=bearer(token))
                if path == SERVICE_PATH else client.get(path, headers=bearer(token)))
    assert response.status_code == 200, response.get_data(as_text=True)


def test_replayed_jti_is_refused_and_nothing_more_is_fetched(setup, es384):
    app, fhir_base, server, _ = setup
    token = mint(es384)
    client = app.test_client()
    assert client.post(SERVICE_PATH, json=fetching_request(fhir_base), headers=bearer(token)).status_code == 200
    fetched = len(server.requests)
    assert fetched > 0
    assert_refused(client.post(SERVICE_PATH, json=fetching_request(fhir_base), headers=bearer(token)))
    assert len(server.requests) == fetched


def test_no_authorization_header_is_401_with_a_plain_bearer_challenge(setup):
    app, fhir_base, server, _ = setup
    assert_refused(app.test_client().post(SERVICE_PATH, json=fetching_request(fhir_base)), token_sent=False)
    assert_refused(app.test_client().get(DISCOVERY_PATH), token_sent=False)
    assert server.requests == []


def test_unknown_paths_and_methods_are_refused_before_routing(setup):
    app, _, _, _ = setup
    client = app.test_client()
    assert_refused(client.post("/cds-services/nope", json={}), token_sent=False)
    assert_refused(client.get(SERVICE_PATH), token_sent=False)


def test_refusal_is_logged_with_reason_and_ids_but_never_the_token(setup, es384, caplog):
    app, fhir_base, _, _ = setup
    body = fetching_request(fhir_base)
    token = mint(es384, claims(aud="https://attacker.test/x", tenant="t-1"))
    caplog.set_level(logging.INFO)
    app.test_client().post(SERVICE_PATH, json=body, headers=bearer(token))
    [record] = [r for r in caplog.records if getattr(r, "event", None) in ("auth_failed", "service_call")]
    assert record.event == "service_call" and (record.status, record.auth) == (401, "refused")
    assert record.auth_reason == "aud is not the URL that was called"
    assert record.hookInstance == body["hookInstance"]
    assert (record.iss, record.tenant) == (ISSUER, "t-1")
    assert record.jti and record.jti in token_claims(token)["jti"]
    assert token not in caplog.text


def token_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_a_forged_token_cannot_burn_a_real_tokens_jti(setup, es384):
    """The jti is recorded only once the signature verifies."""
    app, _, _, _ = setup
    real = mint(es384)
    head, body, signature = real.split(".")
    forged = issued(f"{head}.{body}.{signature[:-8]}AAAAAAAA")
    client = app.test_client()
    assert_refused(client.post(SERVICE_PATH, json=patient_view_request(), headers=bearer(forged)))
    assert client.post(SERVICE_PATH, json=patient_view_request(), headers=bearer(real)).status_code == 200
