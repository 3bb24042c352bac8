"""The pseudonymous patient key: HMAC-SHA256 over where the patient lives and their id.

`namespace` is the EHR's FHIR server base URL (a patient id is unique only per server) or, when the
call names none, the authenticated client's tenant. Without the secret the key cannot be computed
from a patient id, and with a different secret it cannot be linked to another deployment's keys.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger("service.store")

DEV_SECRET_FILE_NAME = "patient-key.secret"


def patient_key(secret: bytes, namespace: str, patient_id: str) -> str:
    message = namespace.encode() + b"\x1f" + patient_id.encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def patient_namespace(fhir_server: str | None, tenant: str | None) -> str:
    if fhir_server:
        parts = urlsplit(fhir_server.strip())
        # Same server however the EHR spells it: case of scheme and host, a trailing slash.
        return "fhir:" + urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), "", ""))
    if tenant:
        return "tenant:" + tenant
    return ""


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
