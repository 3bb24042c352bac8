"""The trusted-client file and the security settings are checked at start, with one-line reasons."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from service import create_app
from service.auth import load_trusted_clients
from service.config import Settings
from tests.auth.support import ISSUER, PATIENT_KEY_SECRET, client_entry, config_refusal, new_key, write_clients
from tests.conftest import PROBE_SERVICE

PROFILES = Path(__file__).parents[2] / "deploy" / "trusted-clients"
PRODUCTION_ENV = {"CDS_MODE": "production", "CDS_PUBLIC_BASE_URL": "https://cds.hospital.test",
                  "CDS_PATIENT_KEY_SECRET": PATIENT_KEY_SECRET}


# -- modes -------------------------------------------------------------------------------------

def test_development_is_the_default_and_needs_nothing():
    settings = Settings.from_env({})
    assert settings.mode == "development"
    assert settings.trusted_clients_file is None and settings.public_base_url is None


def test_production_refuses_to_start_without_trusted_clients():
    assert config_refusal(Settings.from_env, PRODUCTION_ENV).startswith("CDS_TRUSTED_CLIENTS_FILE: required")


def test_production_refuses_a_file_that_lists_no_client(tmp_path):
    path = write_clients(tmp_path)
    settings = Settings.from_env({**PRODUCTION_ENV, "CDS_TRUSTED_CLIENTS_FILE": str(path)})
    assert "lists no client" in config_refusal(create_app, settings, services=[PROBE_SERVICE])


@pytest.mark.parametrize("env,fragment", [
    ({"CDS_PUBLIC_BASE_URL": ""}, "CDS_PUBLIC_BASE_URL: required"),
    ({"CDS_PUBLIC_BASE_URL": "http://cds.hospital.test"}, "must be https"),
    ({"CDS_PUBLIC_BASE_URL": "https://cds.hospital.test/?x=1"}, "CDS_PUBLIC_BASE_URL="),
    ({"CDS_MODE": "staging"}, "CDS_MODE="),
    ({"CDS_JWT_CLOCK_SKEW_SECONDS": "3600"}, "CDS_JWT_CLOCK_SKEW_SECONDS="),
    ({"CDS_JWKS_FETCH_TIMEOUT_SECONDS": "0"}, "CDS_JWKS_FETCH_TIMEOUT_SECONDS="),
])
def test_bad_security_settings_are_config_refusal(env, fragment):
    assert fragment in config_refusal(Settings.from_env, {**PRODUCTION_ENV, "CDS_TRUSTED_CLIENTS_FILE": "x.yaml", **env})


def test_a_bad_redis_url_is_refused_without_echoing_it():
    message = config_refusal(Settings.from_env, {"REDIS_URL": "http://user:s3cret@redis.test:6379"})
    assert message.startswith("REDIS_URL=<hidden>:") and "s3cret" not in message


def test_public_base_url_loses_its_trailing_slash():
    settings = Settings.from_env({**PRODUCTION_ENV, "CDS_PUBLIC_BASE_URL": "https://cds.hospital.test/x/",
                                  "CDS_TRUSTED_CLIENTS_FILE": "x.yaml"})
    assert settings.public_base_url == "https://cds.hospital.test/x"


# -- the shipped profiles --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["epic.example.yaml", "oracle-health.yaml", "cds-hooks-sandbox.yaml"])
def test_shipped_profiles_load(name):
    clients = load_trusted_clients(PROFILES / name)
    assert clients


def test_shipped_profiles_start_a_production_app():
    for name in ("epic.example.yaml", "oracle-health.yaml", "cds-hooks-sandbox.yaml"):
        env = {**PRODUCTION_ENV, "CDS_TRUSTED_CLIENTS_FILE": str(PROFILES / name)}
        if name == "cds-hooks-sandbox.yaml":  # refused in production without it
            env["CDS_INSECURE_ALLOW_SANDBOX_IN_PRODUCTION"] = "true"
        settings = Settings.from_env(env)
        app = create_app(settings, services=[PROBE_SERVICE])
        assert app.test_client().get("/cds-services").status_code == 401
        app.extensions["fasciculation_cds"].fhir_client.close()


def test_oracle_health_profile_binds_its_issuer_to_a_tenant():
    [client] = load_trusted_clients(PROFILES / "oracle-health.yaml").clients
    assert client.iss == "https://cds-hooks.cerner.com" and client.tenant


def test_sandbox_profile_pins_es384_and_its_jku():
    [client] = load_trusted_clients(PROFILES / "cds-hooks-sandbox.yaml").clients
    assert client.iss == "https://sandbox.cds-hooks.org"
    assert client.algorithms == ("ES384",)
    assert list(client.static_keys) == ["44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"]
    assert client.allowed_jku == {"https://sandbox.cds-hooks.org/.well-known/jwks.json"}


# -- the file format -------------------------------------------------------------------------------

KEY = new_key("ES384")


@pytest.mark.parametrize("document,fragment", [
    ({}, "top level"),
    ({"clients": {}}, "clients must be a list"),
    ({"clients": [{"jwks": KEY.jwks}]}, "clients[0].iss is required"),
    ({"clients": [{"iss": ISSUER}]}, "give the client's public keys"),
    ({"clients": [client_entry(KEY, algorithms=["HS256"])]}, "symmetric (HMAC)"),
    ({"clients": [client_entry(KEY, algorithms=["none"])]}, "'none' is never accepted"),
    ({"clients": [client_entry(KEY, algorithms=["EdDSA"])]}, "not supported"),
    ({"clients": [client_entry(KEY, algorithms=[])]}, "must not be empty"),
    ({"clients": [client_entry(KEY, jku=["not a url"])]}, "clients[0].jku"),
    ({"clients": [client_entry(KEY, fhir_servers=["ftp://x.test"])]}, "fhir_servers[0].url"),
    ({"clients": [client_entry(KEY, fhir_servers=[{"url": "https://x.test", "private_network": "yes"}])]},
     "private_network must be true or false"),
    ({"clients": [client_entry(KEY, fhir_servers=[{"url": "https://x.test", "privat_network": True}])]},
     "unknown field(s) privat_network"),
    ({"clients": [client_entry(KEY, issuer="x")]}, "unknown field(s) issuer"),
    ({"clients": [client_entry(KEY), client_entry(KEY)]}, "listed twice"),
    ({"clients": [client_entry(jwks={"keys": []})]}, "non-empty 'keys' list"),
    ({"clients": [client_entry(jwks={"keys": [{**KEY.public_jwk, "kid": None}]})]}, "with a kid"),
    ({"clients": [client_entry(jwks={"keys": [{**KEY.public_jwk, "d": "secret"}]})]}, "private or symmetric key"),
    ({"clients": [client_entry(jwks={"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]})]},
     "private or symmetric key"),
    ({"clients": [client_entry(jwks={"keys": [{**KEY.public_jwk, "x": "broken"}]})]}, "not a usable public key"),
    ({"clients": [client_entry(jwks={"keys": [KEY.public_jwk, KEY.public_jwk]})]}, "appears twice"),
    ({"clients": [client_entry(jwks_file="missing.json")]}, "cannot read"),
])
def test_a_bad_file_is_refused_naming_the_field(tmp_path, document, fragment):
    path = tmp_path / "clients.json"
    path.write_text(json.dumps(document))
    message = config_refusal(load_trusted_clients, path)
    assert message.startswith(f"CDS_TRUSTED_CLIENTS_FILE={str(path)!r}: ")
    assert fragment in message


def test_a_short_rsa_key_is_config_refusal(tmp_path):
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm
    weak = RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 1024).public_key(), as_dict=True)
    path = write_clients(tmp_path, client_entry(jwks={"keys": [{**weak, "kid": "weak"}]}))
    assert "at least 2048 bits" in config_refusal(load_trusted_clients, path)


def test_yaml_errors_and_missing_files_are_one_line(tmp_path):
    bad = tmp_path / "clients.yaml"
    bad.write_text("clients:\n  - iss: [unclosed\n")
    assert "not valid YAML" in config_refusal(load_trusted_clients, bad)
    assert "cannot read it" in config_refusal(load_trusted_clients, tmp_path / "absent.yaml")


def test_yaml_with_a_jwks_file_beside_it(tmp_path):
    (tmp_path / "ehr.jwks.json").write_text(json.dumps(KEY.jwks))
    path = tmp_path / "clients.yaml"
    path.write_text(f"clients:\n  - iss: {ISSUER}\n    jwks_file: ehr.jwks.json\n"
                    "    fhir_servers:\n      - https://FHIR.Hospital.test:443/R4/\n")
    [client] = load_trusted_clients(path).clients
    assert list(client.static_keys) == [KEY.kid]
    assert client.grant_for("https://fhir.hospital.test/R4").base_url == "https://fhir.hospital.test/R4"
    assert client.grant_for("https://fhir.hospital.test/R4/Patient") is None
