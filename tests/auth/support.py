"""Test helpers: signing keys made per test run, token minting, a local HTTP server, production apps.

No private key is ever committed: every key here is generated when the tests run.
"""
from __future__ import annotations

import atexit
import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from service import create_app
from service.client_token import SigningKey
from service.config import ConfigError
from tests.conftest import FIXTURE_AS_OF, PROBE_SERVICE, make_settings, patient_view_request
from tests.secrets import ISSUED, secret_token

PUBLIC_BASE = "https://cds.hospital.test"
DISCOVERY_PATH = "/cds-services"
SERVICE_PATH = "/cds-services/probe"
ISSUER = "https://ehr.hospital.test"
SANDBOX_ISSUER = "https://sandbox.cds-hooks.org"
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
# The fhirServer every request in fixtures/requests names: a signed call may name only a base registered
# for its client, so a client sending the fixtures registers this one.
FIXTURE_FHIR_SERVER = "https://ehr.example.org/fhir/R4"


_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}


def new_key(alg: str = "ES384", kid: str | None = None) -> SigningKey:
    if alg in _CURVES:
        private = ec.generate_private_key(_CURVES[alg]())
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(alg, kid or str(uuid.uuid4()), private)


def claims(aud: str | list[str] = PUBLIC_BASE + SERVICE_PATH, **overrides: Any) -> dict[str, Any]:
    """The claims the CDS Hooks Sandbox sends: exp = iat + 300, a fresh jti, no tenant."""
    now = int(time.time())
    body = {"iss": ISSUER, "aud": aud, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    body.update(overrides)
    return {name: value for name, value in body.items() if value is not _DROP}


_DROP = object()
DROP: Any = _DROP  # claims(jti=DROP) / mint(..., header={"kid": DROP}) leave the field out


def mint(key: SigningKey, payload: dict[str, Any] | None = None, *, header: dict[str, Any] | None = None,
         alg: str | None = None) -> str:
    headers = {"kid": key.kid, "typ": "JWT", **(header or {})}
    headers = {name: value for name, value in headers.items() if value is not _DROP}
    if "typ" not in headers:
        headers["typ"] = None  # PyJWT adds typ JWT unless told to leave it out
    # PyJWS, not jwt.encode: the tests need claims of the wrong type too, signed properly.
    body = json.dumps(payload if payload is not None else claims()).encode()
    return issued(jwt.PyJWS().encode(body, key.private_key, algorithm=alg or key.alg, headers=headers))


def raw_token(header: dict[str, Any], payload: Any, signature: bytes = b"",
              *, hmac_key: bytes | None = None) -> str:
    """A token assembled by hand, for the shapes no library would produce."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if hmac_key is not None:
        signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return issued(f"{signing_input}.{b64(signature)}")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issued(token: str) -> str:
    ISSUED.add(token)  # the suite-wide log scan then proves the token is never logged
    return token


def config_refusal(callable_: Any, *args: Any, **kwargs: Any) -> str:
    """The one-line ConfigError `callable_` raises (the test fails if it raises none)."""
    with pytest.raises(ConfigError) as raised:
        callable_(*args, **kwargs)
    message = str(raised.value)
    assert "\n" not in message
    return message


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- trusted clients and apps -----------------------------------------------------------------------

def client_entry(key: SigningKey | None = None, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"iss": ISSUER}
    if key is not None:
        entry["jwks"] = key.jwks
    entry.update(fields)
    return entry


def write_clients(directory: Path, *entries: dict[str, Any]) -> Path:
    path = directory / f"trusted-clients-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps({"clients": list(entries)}))
    return path


OPEN_APPS: list[Any] = []  # closed after each test by tests/auth/conftest.py
# Production refuses weak and published secrets; this one is random, made per test run.
PATIENT_KEY_SECRET = secrets.token_hex(32)


def production_app(directory: Path, *entries: dict[str, Any], **settings: Any):
    values = {"mode": "production", "public_base_url": PUBLIC_BASE, "patient_key_secret": PATIENT_KEY_SECRET,
              "trusted_clients_file": str(write_clients(directory, *entries)), "jwks_ca_file": local_tls().ca_file}
    values.update(settings)
    return app_with(**values)


def app_with(**settings: Any):
    app = create_app(make_settings(**settings), services=[PROBE_SERVICE], clock=lambda: FIXTURE_AS_OF)
    OPEN_APPS.append(app)
    return app


def fetching_request(fhir_base: str, *, token: bool = True, **overrides: Any) -> dict[str, Any]:
    """A patient-view call that leaves all prefetch out, so serving it means querying fhir_base."""
    body = patient_view_request(prefetch={}, fhirServer=fhir_base, **overrides)
    if token:
        body["fhirAuthorization"] = {"access_token": secret_token(), "token_type": "Bearer",
                                     "expires_in": 300, "scope": "user/*.read", "subject": "cds"}
    return body


# -- a local HTTP server ------------------------------------------------------------------------------

@dataclass
class Recorded:
    path: str
    host: str | None
    authorization: str | None


class LocalServer:
    """An HTTP server on 127.0.0.1 that records requests and serves JWKS, FHIR JSON or redirects.

    routes: path prefix -> (status, headers, body). Anything else is 404. With tls=True it speaks
    https with the test certificate (local_tls() below), as a production JWK Set URL must.
    """

    def __init__(self, *, tls: bool = False) -> None:
        self.scheme = "https" if tls else "http"
        self.requests: list[Recorded] = []
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server.requests.append(Recorded(self.path, self.headers.get("Host"),
                                                self.headers.get("Authorization")))
                for prefix, (status, headers, body) in server.routes.items():
                    if self.path.startswith(prefix):
                        break
                else:
                    status, headers, body = 404, {"Content-Type": "application/json"}, b"{}"
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            self._httpd.socket = local_tls().server_context().wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def root(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def serve_json(self, prefix: str, document: Any, status: int = 200, content_type: str = "application/fhir+json") -> None:
        self.routes[prefix] = (status, {"Content-Type": content_type}, json.dumps(document).encode())

    def redirect(self, prefix: str, location: str) -> None:
        self.routes[prefix] = (302, {"Location": location}, b"")

    def serve_empty_fhir(self, prefix: str = "/fhir") -> str:
        """Answer every FHIR query under prefix with an empty searchset; return the base URL."""
        self.serve_json(prefix, {"resourceType": "Bundle", "type": "searchset", "entry": []})
        return self.root + prefix


class HangingServer:
    """Accepts TCP connections on 127.0.0.1 and never answers (not even a TLS handshake) until stopped."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._held: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def connections(self) -> int:
        return len(self._held)

    @property
    def root(self) -> str:
        return f"https://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> HangingServer:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(connection)
            self._answer(connection)

    def _answer(self, connection: socket.socket) -> None:
        """Say nothing: the connection just stays open."""

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        for connection in self._held:
            connection.close()
        self._listener.close()


class TricklingServer(HangingServer):
    """Answers each connection one byte of an HTTP status line and headers every `interval` seconds
    (some 12 s in all at 0.2 s): every read succeeds, so no per-read timeout fires while it lasts.
    Plain http on 127.0.0.1."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__()
        self._interval = interval

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _answer(self, connection: socket.socket) -> None:
        threading.Thread(target=self._trickle, args=(connection,), daemon=True).start()

    def _trickle(self, connection: socket.socket) -> None:
        text = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"." * 40
        for byte in text:
            if self._stopping.wait(self._interval):
                return
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                return


@dataclass(frozen=True)
class LocalTls:
    """A certificate for 127.0.0.1, made per test run, and the file that makes clients trust it."""

    cert_file: Path
    key_file: Path

    @property
    def ca_file(self) -> str:  # self-signed: the certificate is its own authority
        return str(self.cert_file)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


_TLS: list[LocalTls] = []


def local_tls() -> LocalTls:
    if not _TLS:
        directory = Path(tempfile.mkdtemp(prefix="cds-test-tls-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.now(UTC)
        certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                       .serial_number(x509.random_serial_number())
                       .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
                       .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                      critical=False)
                       .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                       .sign(key, hashes.SHA256()))
        cert_file, key_file = directory / "cert.pem", directory / "key.pem"
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        _TLS.append(LocalTls(cert_file, key_file))
    return _TLS[0]
