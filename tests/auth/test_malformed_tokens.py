"""Whatever arrives in the Authorization header, the answer is 401, never 500."""
from __future__ import annotations

import pytest

from tests.auth.support import (DISCOVERY_PATH, PUBLIC_BASE, SERVICE_PATH, b64, claims, client_entry, mint,
                                production_app, raw_token)
from tests.conftest import patient_view_request


@pytest.fixture
def app(tmp_path, es384):
    return production_app(tmp_path, client_entry(es384))


def header_values(key):
    good = {"alg": "ES384", "typ": "JWT", "kid": key.kid}
    valid = mint(key)
    head, body, signature = valid.split(".")
    return {
        "empty": "",
        "bearer alone": "Bearer",
        "bearer and spaces": "Bearer    ",
        "basic scheme": "Basic dXNlcjpwYXNz",
        "token without scheme": valid,
        "one segment": "Bearer abc",
        "two segments": f"Bearer {head}.{body}",
        "four segments": f"Bearer {valid}.xyz",
        "garbage base64": "Bearer !!!.@@@.###",
        "header not json": f"Bearer {b64(b'not json')}.{body}.{signature}",
        "header is a list": f"Bearer {b64(b'[1, 2]')}.{body}.{signature}",
        "payload not json": f"Bearer {head}.{b64(bytes([0xff, 0xfe]))}.{signature}",
        "payload is a string": f"Bearer {raw_token(good, 'hello')}",
        "non-ascii": "Bearer тест.тест.тест",
        "huge": "Bearer " + "a" * 20000,
        "kid is a number": f"Bearer {raw_token({**good, 'kid': 7}, claims())}",
        "alg is a list": f"Bearer {raw_token({**good, 'alg': ['ES384']}, claims())}",
        "typ missing": f"Bearer {mint(key, header={'typ': None})}",
        "jku is a number": f"Bearer {raw_token({**good, 'jku': 5}, claims())}",
        "crit header": f"Bearer {mint(key, header={'crit': ['exp'], 'exp': 1})}",
        "exp is a string": f"Bearer {mint(key, claims(exp='tomorrow'))}",
        "exp is a bool": f"Bearer {mint(key, claims(exp=True))}",
        "exp is huge": f"Bearer {mint(key, claims(exp=10 ** 30))}",
        "iat is null": f"Bearer {mint(key, claims(iat=None))}",
        "nbf is a string": f"Bearer {mint(key, claims(nbf='now'))}",
        "aud is a number": f"Bearer {mint(key, claims(aud=5))}",
        "aud is an empty list": f"Bearer {mint(key, claims(aud=[]))}",
        "aud list of non-strings": f"Bearer {mint(key, claims(aud=[{'url': PUBLIC_BASE + SERVICE_PATH}]))}",
        "iss is a list": f"Bearer {mint(key, claims(iss=['https://ehr.hospital.test']))}",
        "tenant is a number": f"Bearer {mint(key, claims(tenant=3))}",
        "jti is a number": f"Bearer {mint(key, claims(jti=12345))}",
        "jti is empty": f"Bearer {mint(key, claims(jti=''))}",
        "signature empty": f"Bearer {head}.{body}.",
        "signature wrong length": f"Bearer {head}.{body}.{b64(b'short')}",
    }


def test_every_malformed_header_is_401(app, es384):
    client = app.test_client()
    for name, value in header_values(es384).items():
        for response in (client.post(SERVICE_PATH, json=patient_view_request(), headers={"Authorization": value}),
                         client.get(DISCOVERY_PATH, headers={"Authorization": value})):
            assert response.status_code == 401, f"{name}: {response.status_code} {response.get_data(as_text=True)}"
            assert response.get_json()["issue"][0]["code"] == "login", name
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), name


def test_a_wrong_body_after_a_valid_token_is_still_a_400(app, es384):
    """Authentication does not swallow the protocol's own errors."""
    response = app.test_client().post(SERVICE_PATH, data=b"{not json", content_type="application/json",
                                      headers={"Authorization": f"Bearer {mint(es384)}"})
    assert response.status_code == 400
