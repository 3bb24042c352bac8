"""`fasciculation-cds` for operators: evaluate from standard input, database commands that need only the
database, `report` from any folder, a busy port, and `jwt` for smoke-testing a production deployment."""
from __future__ import annotations

import io
import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service import create_app
from service.cli import main
from service.config import Settings
from tests.auth.support import FIXTURE_FHIR_SERVER, PUBLIC_BASE, bearer, issued, write_clients

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
AS_OF = "2026-11-15T09:00:00Z"
ISS = "https://smoke-test.hospital.test"


def cli(*argv: str, env: dict[str, str] | None = None, cwd: Path = ROOT, stdin: bytes | None = None):
    """The installed command in a process of its own, with only the environment given (and PATH, HOME)."""
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "CDS_LOG_LEVEL": "ERROR"}
    return subprocess.run([sys.executable, "-m", "service.cli", *argv], cwd=cwd, input=stdin, capture_output=True,
                          env={**base, **(env or {}), "PYTHONPATH": str(ROOT)}, timeout=120)


# -- evaluate ------------------------------------------------------------------------------------------

def test_evaluate_reads_standard_input(capsys, monkeypatch):
    data = (FIXTURES / "requests/02-twitch-with-weakness.json").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["evaluate", "-", "--as-of", AS_OF]) == 0
    assert "topic: neurology-referral" in capsys.readouterr().out


def two_patients() -> bytes:
    bundle = json.loads((FIXTURES / "patients/02-twitch-with-weakness.json").read_text())
    bundle["entry"].append({"resource": {"resourceType": "Patient", "id": "second"}})
    return json.dumps(bundle).encode()


@pytest.mark.parametrize("content,message", [
    (b"", "standard input: empty; expected a CDS Hooks request or a FHIR Bundle"),
    (b"[1, 2]", "standard input: expected a JSON object, found an array"),
    (b'"text"', "standard input: expected a JSON object, found a string"),
    (b'{"resourceType": "Patient", "id": "p"}', "found a FHIR Patient"),
    (b'{"context": {}, "prefetch": {}}', "found an object with keys 'context', 'prefetch'"),
    (b'{"resourceType": "Bundle", "type": "collection", "entry": []}',
     "exactly one Patient with an id; found 0 Patient resources among 0 entries"),
    (b'{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient"}}]}',
     "its one Patient has no id"),
    (two_patients(), "found 2 Patient resources among 11 entries"),
])
def test_evaluate_errors_name_the_input_and_what_it_held(capsys, monkeypatch, content, message):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(content)))
    assert main(["evaluate", "-"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_evaluate_errors_name_the_file(tmp_path, capsys):
    path = tmp_path / "order.json"
    path.write_text('{"hook": "encounter-start", "hookInstance": "x", "context": {}}')
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fasciculation-cds: {path}: no service answers the hook 'encounter-start' (hooks served: "), err


# -- database commands and report ---------------------------------------------------------------------------

def test_db_commands_need_only_the_database_whatever_else_production_lacks(tmp_path):
    env = {"CDS_MODE": "production", "DATABASE_URL": f"sqlite:///{tmp_path / 'cds.sqlite3'}"}
    assert cli("serve", env=env).returncode == 2  # the service itself would not start like this
    upgraded = cli("db", "upgrade", env=env)
    assert upgraded.returncode == 0 and b"upgraded empty -> " in upgraded.stdout, upgraded.stderr
    status = cli("db", "status", env=env)
    assert status.returncode == 0 and b"(current)" in status.stdout, status.stderr
    report = cli("report", "--json", env=env)
    assert report.returncode == 0 and json.loads(report.stdout)["totals"]["shown"] == 0, report.stderr


def test_report_sees_the_same_data_from_any_folder(tmp_path, monkeypatch):
    """CDS_DATA_DIR unset: the data lives under the user's data directory, not the current one."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    settings = Settings.from_env({"CDS_LOG_LEVEL": "ERROR"})
    assert settings.data_dir == str(home / ".local/share/fasciculation-cds")
    app = create_app(settings)
    try:
        request = json.loads((FIXTURES / "requests/02-twitch-with-weakness.json").read_text())
        cards = app.test_client().post("/cds-services/fasciculation-cramp-review", json=request).get_json()["cards"]
        assert cards
    finally:
        app.extensions["fasciculation_cds"].fhir_client.close()
        app.extensions["fasciculation_cds_card_log"].store.close()
    shown = []
    for folder in (ROOT, tmp_path, Path("/")):
        result = cli("report", "--json", "--days", "365", env={"HOME": str(home)}, cwd=folder)
        assert result.returncode == 0, result.stderr
        shown.append(json.loads(result.stdout)["totals"]["shown"])
    assert shown == [len(cards)] * 3


# -- serve -----------------------------------------------------------------------------------------------------

def test_serve_on_a_busy_port_says_so_in_one_line_and_leaves_nothing_behind(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("serve", "--port", str(port), env={"TMPDIR": str(scratch), "CDS_DATA_DIR": str(tmp_path / "d")})
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        f"fasciculation-cds: cannot listen on 127.0.0.1:{port}: the address is already in use (another server, "
        "or an earlier one still running?); choose another with --port or CDS_PORT"]
    assert list(scratch.iterdir()) == []


# -- jwt ---------------------------------------------------------------------------------------------------------

def pem(private_key) -> bytes:
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())


@pytest.fixture
def smoke_key(tmp_path) -> Path:
    path = tmp_path / "smoke-test.pem"
    path.write_bytes(pem(ec.generate_private_key(ec.SECP384R1())))
    return path


def registered(tmp_path, key: Path, kid: str = "smoke-1", **entry) -> Path:
    jwks = cli("jwt", "--key", str(key), "--kid", kid, "--jwks")
    assert jwks.returncode == 0, jwks.stderr
    keys = json.loads(jwks.stdout)
    assert [set(k) for k in keys["keys"]] == [{"kty", "crv", "x", "y", "kid", "alg", "use"}]  # public members only
    return write_clients(tmp_path, {"iss": ISS, "jwks": keys, **entry})


def test_a_minted_token_is_accepted_by_a_production_service(tmp_path, smoke_key):
    # The smoke-test client registers the FHIR base the fixture request names, as docs/operations.md says.
    clients = registered(tmp_path, smoke_key, fhir_servers=[FIXTURE_FHIR_SERVER])
    settings = Settings.from_env({"CDS_MODE": "production", "CDS_PUBLIC_BASE_URL": PUBLIC_BASE,
                                  "CDS_TRUSTED_CLIENTS_FILE": str(clients),
                                  "CDS_PATIENT_KEY_SECRET": secrets.token_hex(32),
                                  "CDS_DATA_DIR": str(tmp_path / "data"), "CDS_LOG_LEVEL": "ERROR"})
    app = create_app(settings)
    try:
        client = app.test_client()
        assert client.get("/cds-services").status_code == 401
        for path in ("/cds-services", "/cds-services/fasciculation-cramp-review"):
            minted = cli("jwt", "--key", str(smoke_key), "--kid", "smoke-1", "--iss", ISS, "--aud", PUBLIC_BASE + path,
                         env={"CDS_TRUSTED_CLIENTS_FILE": str(clients)})
            assert minted.returncode == 0, minted.stderr
            token = issued(minted.stdout.decode().strip())
            if path == "/cds-services":
                response = client.get(path, headers=bearer(token))
                assert response.status_code == 200 and response.get_json()["services"]
            else:
                request = json.loads((FIXTURES / "requests/02-twitch-with-weakness.json").read_text())
                response = client.post(path, json=request, headers=bearer(token))
                assert response.status_code == 200, response.get_json()
                assert "neurology-referral" in {c["source"]["topic"]["code"] for c in response.get_json()["cards"]}
                assert client.post(path, json=request, headers=bearer(token)).status_code == 401  # jti spent
    finally:
        app.extensions["fasciculation_cds"].fhir_client.close()
        app.extensions["fasciculation_cds_card_log"].store.close()


@pytest.mark.parametrize("lifetime,accepted", [(900, True), (901, False), (3600, False)])
def test_jwt_mints_no_token_a_service_on_its_defaults_would_refuse_as_too_long_lived(smoke_key, lifetime, accepted):
    result = cli("jwt", "--key", str(smoke_key), "--kid", "k", "--iss", ISS, "--aud", PUBLIC_BASE + "/cds-services",
                 "--lifetime", str(lifetime))
    if accepted:
        claims = jwt.decode(result.stdout.decode().strip(), options={"verify_signature": False})
        assert result.returncode == 0 and claims["exp"] - claims["iat"] == lifetime
    else:
        assert result.returncode == 2 and result.stdout == b""
        assert f"--lifetime={lifetime}: must be between 10 and 900 seconds" in result.stderr.decode()


def test_jwt_checks_the_key_is_registered_before_minting(tmp_path, smoke_key):
    clients = registered(tmp_path, smoke_key)
    other = tmp_path / "other.pem"
    other.write_bytes(pem(ec.generate_private_key(ec.SECP384R1())))
    p256 = tmp_path / "p256.pem"
    p256.write_bytes(pem(ec.generate_private_key(ec.SECP256R1())))
    aud = PUBLIC_BASE + "/cds-services"
    for key, kid, iss, message in (
            (smoke_key, "smoke-1", "https://unknown.test", "iss 'https://unknown.test' is not a trusted client"),
            (smoke_key, "smoke-2", ISS, "has no key with kid 'smoke-2'"),
            (other, "smoke-1", ISS, "is another public key than this private key's"),
            (p256, "smoke-1", ISS, "does not allow ES256")):
        result = cli("jwt", "--key", str(key), "--kid", kid, "--iss", iss, "--aud", aud, "--clients", str(clients))
        assert result.returncode == 2 and result.stdout == b""
        err = result.stderr.decode()
        assert message in err and "the service would refuse this token" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("content,message", [
    (b"not a key", "not an unencrypted PEM private key of the client"),
    (b"0123456789abcdef0123456789abcdef", "not an unencrypted PEM private key"),  # a shared secret is no key
    (pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "RSA >= 2048-bit (RS384) key is needed"),
])
def test_jwt_signs_only_with_an_asymmetric_client_key(tmp_path, content, message):
    key = tmp_path / "key.pem"
    key.write_bytes(content)
    result = cli("jwt", "--key", str(key), "--kid", "k", "--iss", ISS, "--aud", PUBLIC_BASE + "/cds-services")
    assert result.returncode == 2 and message in result.stderr.decode(), result.stderr
    assert cli("jwt", "--key", str(tmp_path / "missing.pem"), "--kid", "k", "--jwks").stderr.decode().endswith(
        "missing.pem: No such file or directory\n")


def test_jwt_needs_an_issuer_and_an_audience_url(smoke_key):
    assert b"--iss and --aud are needed" in cli("jwt", "--key", str(smoke_key), "--kid", "k").stderr
    result = cli("jwt", "--key", str(smoke_key), "--kid", "k", "--iss", ISS, "--aud", "/cds-services")
    assert result.returncode == 2 and b"--aud='/cds-services': must be an absolute http(s) URL" in result.stderr
