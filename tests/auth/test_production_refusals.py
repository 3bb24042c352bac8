"""What production refuses to start with: published or guessable secrets, key set URLs over plain
http, and the public CDS Hooks Sandbox (unless a loudly named setting allows it). Each refusal is
one line naming the setting, and development mode keeps working with all of them.

Red-team findings (issue 15, items 3-5); every test marked "attack" FAILS on the code at c2304de.
"""
from __future__ import annotations

import json
import logging
import re
import secrets
from pathlib import Path

import pytest
import yaml

from service import create_app
from service.auth.sandbox import SANDBOX_PUBLIC_KEY
from service.config import Settings
from service.secret_strength import secret_weakness
from tests.auth.support import (DISCOVERY_PATH, PATIENT_KEY_SECRET, PUBLIC_BASE, SANDBOX_ISSUER, SANDBOX_JKU,
                                SERVICE_PATH, app_with, bearer, claims, client_entry, config_refusal, mint,
                                production_app, write_clients)
from tests.conftest import PROBE_SERVICE, make_settings

ROOT = Path(__file__).parents[2]
PROFILES = ROOT / "deploy" / "trusted-clients"
# Values published in this repository at c2304de: deploy/kubernetes/secret.yaml and the compose file.
K8S_SECRET = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "secret.yaml").read_text())["stringData"]
PUBLISHED_SECRETS = [K8S_SECRET["CDS_PATIENT_KEY_SECRET"], K8S_SECRET["CDS_ADMIN_TOKEN"],
                     "local-only-0123456789abcdef0123456789abcdef"]
GUESSABLE = ["a" * 32, "ab" * 16, "0123456789abcdef" * 2, "abcdefghijklmnopqrstuvwxyz0123456789",
             "passwordpasswordpasswordpassword", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab1x"]


def production_env(**overrides: str) -> dict[str, str]:
    env = {"CDS_MODE": "production", "CDS_PUBLIC_BASE_URL": PUBLIC_BASE, "CDS_TRUSTED_CLIENTS_FILE": "x.yaml",
           "CDS_PATIENT_KEY_SECRET": secrets.token_hex(32)}
    env.update(overrides)
    return env


# -- item 3: secrets -------------------------------------------------------------------------------

@pytest.mark.parametrize("setting", ["CDS_PATIENT_KEY_SECRET", "CDS_ADMIN_TOKEN"])
@pytest.mark.parametrize("value", PUBLISHED_SECRETS + GUESSABLE)
def test_attack_published_and_guessable_secrets_are_refused_in_production(setting, value):
    """Attack: the shipped placeholders and "a" * 32 passed the 32-character check. FAILS at c2304de."""
    message = config_refusal(Settings.from_env, production_env(**{setting: value}))
    assert message.startswith(f"{setting}=<hidden>: ") and "refused when CDS_MODE=production" in message
    assert value not in message  # never echoed
    # Development mode, on the developer's own machine, takes them.
    assert getattr(Settings.from_env({setting: value}), setting.removeprefix("CDS_").lower()) == value


@pytest.mark.parametrize("setting,url", [
    ("DATABASE_URL", "postgresql://fasciculation_cds:REPLACE-password@postgres.hospital.example:5432/cds"),
    ("REDIS_URL", "rediss://:REPLACE-password@redis.hospital.example:6379/0"),
    ("DATABASE_URL", "postgresql://fasciculation_cds:local-only@postgres:5432/fasciculation_cds"),
])
def test_attack_placeholder_passwords_in_connection_urls_are_refused_in_production(setting, url):
    """Attack: the Secret's `REPLACE-password` and the compose file's `local-only` started production.
    FAILS at c2304de."""
    message = config_refusal(Settings.from_env, production_env(**{setting: url}))
    assert message.startswith(f"{setting}=<hidden>: its password is a published placeholder")
    assert "REPLACE-password" not in message and "local-only@" not in message


def test_every_weak_secret_is_named_in_one_config_refusal():
    message = config_refusal(Settings.from_env, production_env(CDS_PATIENT_KEY_SECRET="a" * 32,
                                                       CDS_ADMIN_TOKEN=K8S_SECRET["CDS_ADMIN_TOKEN"]))
    assert "CDS_PATIENT_KEY_SECRET=<hidden>" in message and "CDS_ADMIN_TOKEN=<hidden>" in message


@pytest.mark.parametrize("make", [lambda: secrets.token_hex(16), lambda: secrets.token_hex(32),
                                  lambda: secrets.token_urlsafe(24), lambda: secrets.token_urlsafe(32)])
def test_secrets_made_as_documented_are_accepted(make):
    for _ in range(2000):
        value = make()
        assert secret_weakness(value) is None, value
    settings = Settings.from_env(production_env(CDS_PATIENT_KEY_SECRET=make(), CDS_ADMIN_TOKEN=make(),
                                                DATABASE_URL=f"postgresql://cds:{make()}@db/cds",
                                                REDIS_URL="redis://redis:6379/0"))
    assert settings.mode == "production"


def test_the_shipped_secret_manifest_holds_only_placeholders_production_refuses():
    """deploy/kubernetes/secret.yaml is a template: applied unedited, the pods refuse to start."""
    message = config_refusal(Settings.from_env, production_env(**K8S_SECRET))
    for name in K8S_SECRET:
        assert f"{name}=<hidden>" in message, name


def test_the_compose_file_writes_no_secret_down():
    compose = (ROOT / "deploy" / "compose" / "docker-compose.yml").read_text()
    assert "local-only" not in compose
    environment = yaml.safe_load(compose)["x-cds"]["environment"]
    assert re.fullmatch(r"\$\{CDS_PATIENT_KEY_SECRET:\?.+\}", environment["CDS_PATIENT_KEY_SECRET"])
    assert "${CDS_COMPOSE_POSTGRES_PASSWORD:?" in environment["DATABASE_URL"]


# -- item 4: key set URLs over plain http --------------------------------------------------------------

@pytest.mark.parametrize("field", ["jku", "jwks_url"])
def test_attack_a_key_set_url_over_plain_http_is_refused_in_production(tmp_path, es384, field):
    """Attack: anyone on the path to an http jku/jwks_url could swap in their own keys (RFC 7515 requires
    TLS). FAILS at c2304de, which started and fetched keys over http."""
    url = "http://ehr.hospital.test/jwks.json"
    entry = client_entry(**{field: [url] if field == "jku" else url})
    message = config_refusal(production_app, tmp_path, entry)
    assert f"the key set URL {url!r} is not https" in message
    assert message.startswith("CDS_TRUSTED_CLIENTS_FILE=")
    # https is fine, and development mode (local test servers) may use http.
    production_app(tmp_path, client_entry(**{field: [url.replace("http:", "https:")] if field == "jku"
                                                    else url.replace("http:", "https:")}))
    app_with(trusted_clients_file=str(write_clients(tmp_path, entry)))


def test_an_https_jwks_is_fetched_in_production(tmp_path, tls_server, es384):
    tls_server.serve_json("/jwks.json", es384.jwks, content_type="application/json")
    app = production_app(tmp_path, client_entry(jwks_url=tls_server.root + "/jwks.json"))
    response = app.test_client().get(DISCOVERY_PATH, headers=bearer(mint(es384, claims(aud=PUBLIC_BASE + DISCOVERY_PATH))))
    assert response.status_code == 200
    assert [r.path for r in tls_server.requests] == ["/jwks.json"]


# -- item 5: the public sandbox ------------------------------------------------------------------------

def sandbox_variants(tmp_path: Path) -> dict[str, Path]:
    """The shipped profile, and entries that trust the sandbox's key without naming its issuer."""
    bundled = json.loads((PROFILES / "cds-hooks-sandbox.jwks.json").read_text())
    return {
        "shipped profile": PROFILES / "cds-hooks-sandbox.yaml",
        "its key under another iss": write_clients(tmp_path, client_entry(iss="https://renamed.test", jwks=bundled)),
        "its jku under another iss": write_clients(tmp_path, client_entry(iss="https://renamed.test", jku=[SANDBOX_JKU])),
    }


@pytest.mark.parametrize("variant", ["shipped profile", "its key under another iss", "its jku under another iss"])
def test_attack_the_sandbox_profile_is_refused_in_production(tmp_path, variant):
    """Attack: the sandbox's private key is public, so its profile lets anyone sign calls. It loaded
    silently in production. FAILS at c2304de."""
    settings = make_settings(mode="production", public_base_url=PUBLIC_BASE, patient_key_secret=PATIENT_KEY_SECRET,
                             trusted_clients_file=str(sandbox_variants(tmp_path)[variant]))
    message = config_refusal(create_app, settings, services=[PROBE_SERVICE])
    assert "is the public CDS Hooks Sandbox, whose private key is published" in message
    assert "CDS_INSECURE_ALLOW_SANDBOX_IN_PRODUCTION=true" in message


def test_the_loud_setting_lets_the_sandbox_in_with_a_warning_on_every_start(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="service.auth")
    settings = make_settings(mode="production", public_base_url=PUBLIC_BASE, patient_key_secret=PATIENT_KEY_SECRET,
                             trusted_clients_file=str(PROFILES / "cds-hooks-sandbox.yaml"),
                             insecure_allow_sandbox_in_production=True)
    for _ in range(2):
        app = create_app(settings, services=[PROBE_SERVICE])
        app.extensions["fasciculation_cds"].fhir_client.close()
    warnings = [r for r in caplog.records if getattr(r, "event", None) == "sandbox_trusted_in_production"]
    assert len(warnings) == 2
    assert all(r.levelno == logging.WARNING and r.trusted_clients == ["cds-hooks-sandbox"] for r in warnings)
    assert "INSECURE" in warnings[0].getMessage()


def test_the_setting_is_named_loudly_and_off_by_default():
    assert Settings.from_env({}).insecure_allow_sandbox_in_production is False
    assert Settings.from_env({"CDS_INSECURE_ALLOW_SANDBOX_IN_PRODUCTION": "true"}).insecure_allow_sandbox_in_production
    assert "CDS_INSECURE_ALLOW_SANDBOX_IN_PRODUCTION=" in config_refusal(
        Settings.from_env, {"CDS_INSECURE_ALLOW_SANDBOX_IN_PRODUCTION": "maybe"})


def test_other_clients_are_not_taken_for_the_sandbox(tmp_path, es384):
    production_app(tmp_path, client_entry(es384))
    for name in ("epic.example.yaml", "oracle-health.yaml"):
        settings = make_settings(mode="production", public_base_url=PUBLIC_BASE,
                                 patient_key_secret=PATIENT_KEY_SECRET, trusted_clients_file=str(PROFILES / name))
        create_app(settings, services=[PROBE_SERVICE]).extensions["fasciculation_cds"].fhir_client.close()


def test_the_recognised_key_is_the_one_the_sandbox_publishes():
    [key] = json.loads((PROFILES / "cds-hooks-sandbox.jwks.json").read_text())["keys"]
    assert (key["x"], key["y"]) == SANDBOX_PUBLIC_KEY


def test_the_sandbox_profile_works_in_development_mode(tmp_path, sandbox_shaped_key, caplog):
    """The shipped profile, unchanged but for our stand-in key, identifies sandbox-signed calls."""
    profile = yaml.safe_load((PROFILES / "cds-hooks-sandbox.yaml").read_text())
    [entry] = profile["clients"]
    del entry["jwks_file"]
    entry["jwks"] = sandbox_shaped_key.jwks
    app = app_with(trusted_clients_file=str(write_clients(tmp_path, entry)))
    caplog.set_level(logging.INFO)
    # The sandbox's shape: ES384, its kid, its jku, aud = the URL called, exp = iat + 300, no tenant.
    token = mint(sandbox_shaped_key, claims(iss=SANDBOX_ISSUER, aud="http://localhost" + SERVICE_PATH),
                 header={"jku": SANDBOX_JKU})
    response = app.test_client().post(SERVICE_PATH, headers=bearer(token), json={
        "hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "fhirServer": "https://launch.smarthealthit.org/v/r4/fhir",
        "context": {"userId": "Practitioner/COREPRACTITIONER1", "patientId": "smart-1288992"},
        "prefetch": {"patient": {"resourceType": "Patient", "id": "smart-1288992"}, "conditions": None,
                     "observations": None}})
    assert response.status_code == 200, response.get_data(as_text=True)
    [line] = [r for r in caplog.records if getattr(r, "event", None) == "service_call"]
    assert line.iss == SANDBOX_ISSUER and line.tenant is None


# -- documentation -----------------------------------------------------------------------------------

def test_the_readme_lists_the_production_start_up_refusals():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Authentication"):readme.index("\n## ", readme.index("## Authentication") + 1)]
    assert "Production refuses to start" in section
    for needle in ("CDS_TRUSTED_CLIENTS_FILE", "CDS_PUBLIC_BASE_URL", "CDS_PATIENT_KEY_SECRET", "CDS_ADMIN_TOKEN",
                   "DATABASE_URL", "REDIS_URL", "placeholder", '"a" * 32', "`jku` or `jwks_url` is plain `http`",
                   "CDS_INSECURE_ALLOW_SANDBOX_IN_PRODUCTION=true"):
        assert needle in section, needle


def test_the_threat_model_lists_every_red_team_finding():
    threats = (ROOT / "docs" / "security.md").read_text()
    threats = threats[threats.index("## Threats and what stops them"):threats.index("## Modes")]
    for item in range(1, 13):
        assert re.search(rf"\(item {item}\b|\(red team, issue 15 item {item}\)", threats), item
