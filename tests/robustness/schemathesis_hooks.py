"""schemathesis hooks for tests/robustness/test_contract_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

Signs a fresh CDS Hooks JWT for every generated call to /cds-services (a new jti, `aud` = the URL
called, as an EHR does) and sends the admin token to the analytics pages. The signing key is the
one the test generated for this run, handed over in a file of the run's temporary directory.
"""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from urllib.parse import unquote

import jwt
import schemathesis
from cryptography.hazmat.primitives.serialization import load_pem_private_key

_KEY = load_pem_private_key(Path(os.environ["CDS_FUZZ_KEY_FILE"]).read_bytes(), password=None)
_KID = os.environ["CDS_FUZZ_KID"]
_ISSUER = os.environ["CDS_FUZZ_ISSUER"]
_PUBLIC_BASE = os.environ["CDS_FUZZ_PUBLIC_BASE"]
_ADMIN_TOKEN = os.environ["CDS_FUZZ_ADMIN_TOKEN"]


def cds_hooks_jwt(path: str) -> str:
    now = int(time.time())
    claims = {"iss": _ISSUER, "aud": _PUBLIC_BASE + path, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    return jwt.encode(claims, _KEY, algorithm="ES384", headers={"kid": _KID, "typ": "JWT"})


@schemathesis.auth(refresh_interval=None, retry_on=[])  # no caching: every call its own token
class SignedCalls:
    def get(self, case, context):
        path = unquote(case.formatted_path)
        if path.startswith("/cds-services"):
            return cds_hooks_jwt(path)
        if path.startswith("/analytics"):
            return _ADMIN_TOKEN
        return None

    def set(self, case, data, context):
        if data is not None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
