"""The pseudonymous patient key: HMAC-SHA256 over whose patient it is and their id.

A patient id is unique only within one FHIR server, and a FHIR server belongs to one health system,
so the key covers who called and where the patient lives (`patient_namespace`):

- a signed call: the authenticated client (its `iss` and the token's `tenant`) and the FHIR base the
  client registered that the call's `fhirServer` matched (none when the call names no server). A
  client can therefore never read or write the history of another client's patients, even by naming
  their FHIR server (service/patient_scope.py refuses that) or by naming no server at all;
- an unsigned call (served in development mode only): a namespace of its own, on the `fhirServer` as
  sent, which no signed call can reach.

Without the secret the key cannot be computed from a patient id, and with a different secret it
cannot be linked to another deployment's keys. Keys made before this scheme (version 1: keyed on the
request's `fhirServer` or tenant alone) were cleared by migration 0003_patient_key_per_client.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger("service.store")

DEV_SECRET_FILE_NAME = "patient-key.secret"
NAMESPACE_VERSION = 2


def patient_key(secret: bytes, namespace: str, patient_id: str) -> str:
    message = namespace.encode() + b"\x1f" + patient_id.encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def patient_namespace(*, signed: bool, iss: str | None = None, tenant: str | None = None,
                      fhir_base: str | None = None) -> str:
    """Who the patient belongs to, as one unambiguous string (a JSON array).

    signed: the call's JWT verified; `iss` and `tenant` are then its claims and `fhir_base` the
    registered base. Unsigned: `fhir_base` is the request's fhirServer, as sent.
    """
    base = _same_server(fhir_base) if fhir_base else ""
    scope = ["signed", iss or "", tenant or ""] if signed else ["unsigned"]
    return json.dumps([NAMESPACE_VERSION, *scope, base], separators=(",", ":"))


def _same_server(url: str) -> str:
    # Same server however it is spelt: case of scheme and host, a trailing slash.
    parts = urlsplit(url.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), "", ""))


def development_secret(data_dir: str) -> bytes:
    """A random secret kept in the data directory, shared by every worker using that directory.

    Development only (production never uses it): a secret stored next to the data it protects
    protects nothing once both leak, and replicas with separate directories would compute
    different keys for the same patient.
    """
    path = Path(data_dir) / DEV_SECRET_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Written whole to a private file, then linked into place: a concurrent starter either wins
        # the link or reads the winner's complete secret, never a half-written one.
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
        try:
            os.link(candidate, path)
        except FileExistsError:
            pass
        finally:
            candidate.unlink()
    value = path.read_text().strip()
    if len(value) < 32:
        raise OSError(f"{path} holds no usable secret; delete it to generate a new one")
    log.warning("CDS_PATIENT_KEY_SECRET is not set: pseudonymous patient keys use the development secret "
                "in the data directory; set CDS_PATIENT_KEY_SECRET for any shared deployment",
                extra={"event": "development_patient_key_secret", "file": str(path)})
    return value.encode()
