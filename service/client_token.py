"""A CDS Hooks JWT signed the way a trusted client (an EHR) signs it: for smoke-testing a deployment.

`fasciculation-cds jwt` (service/cli.py) uses this. It signs with a private key of the *client's*
(a PEM file the operator made for a smoke-test client registered in the trusted-clients file), never
with anything of the service's: the service holds only public keys and its own HMAC secrets, and an
HMAC-signed token is refused by the service anyway (CDS Hooks allows asymmetric signatures only).

    key = SigningKey.load(Path("smoke-test.pem"), kid="smoke-test-1")
    key.jwks                                      # the public JWK Set to register for the client
    key.mint(iss=..., aud="https://cds.hospital.example/cds-services")
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from service.auth.clients import TrustedClients
from service.config import DEFAULT_JWT_MAX_LIFETIME_SECONDS

# What the service verifies by default (service/auth/algorithms.py): ES384 on P-384, RS384.
_EC_ALGORITHM = {"secp384r1": "ES384", "secp256r1": "ES256", "secp521r1": "ES512"}
DEFAULT_LIFETIME_SECONDS = 300  # as the CDS Hooks Sandbox: a token for one call, five minutes
# A service on its default settings refuses a token declaring a longer lifetime (exp - iat).
MAX_LIFETIME_SECONDS = DEFAULT_JWT_MAX_LIFETIME_SECONDS


class TokenError(ValueError):
    """The key or a claim cannot make a token the service would accept; str() says why, in one line."""


@dataclass(frozen=True)
class SigningKey:
    alg: str
    kid: str
    private_key: Any = field(repr=False)

    @classmethod
    def load(cls, path: Path, kid: str) -> SigningKey:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise TokenError(f"{path}: {error.strerror or error}") from None
        try:
            private_key = load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as error:
            raise TokenError(f"{path}: not an unencrypted PEM private key of the client "
                             f"({' '.join(str(error).split())[:200]})") from None
        if isinstance(private_key, ec.EllipticCurvePrivateKey) and private_key.curve.name in _EC_ALGORITHM:
            alg = _EC_ALGORITHM[private_key.curve.name]
        elif isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size >= 2048:
            alg = "RS384"
        else:
            raise TokenError(f"{path}: an EC P-384 (ES384) or RSA >= 2048-bit (RS384) key is needed, as CDS Hooks "
                             "clients sign with")
        if not kid.strip():
            raise TokenError("--kid: the key id registered for the client is needed")
        return cls(alg, kid, private_key)

    @property
    def public_jwk(self) -> dict[str, Any]:
        algorithm = ECAlgorithm if self.alg.startswith("ES") else RSAAlgorithm
        jwk = algorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}

    def mint(self, *, iss: str, aud: str, tenant: str | None = None,
             lifetime_seconds: int = DEFAULT_LIFETIME_SECONDS, now: float | None = None) -> str:
        for name, url in (("--iss", iss), ("--aud", aud)):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise TokenError(f"{name}={url!r}: must be an absolute http(s) URL")
        if not 10 <= lifetime_seconds <= MAX_LIFETIME_SECONDS:
            raise TokenError(f"--lifetime={lifetime_seconds}: must be between 10 and {MAX_LIFETIME_SECONDS} seconds "
                             "(the service's default CDS_JWT_MAX_LIFETIME_SECONDS)")
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {"iss": iss, "aud": aud, "exp": issued + lifetime_seconds, "iat": issued,
                                  "jti": str(uuid.uuid4())}
        if tenant:
            claims["tenant"] = tenant
        return jwt.encode(claims, self.private_key, algorithm=self.alg, headers={"kid": self.kid, "typ": "JWT"})

    def registration_problem(self, clients: TrustedClients, iss: str, tenant: str | None) -> str | None:
        """Why the service reading `clients` would refuse this key for `iss`, or None (or unknowable offline)."""
        client = clients.find(iss, tenant)
        if client is None:
            return f"iss {iss!r}" + (f" with tenant {tenant!r}" if tenant else "") + " is not a trusted client there"
        if self.alg not in client.algorithms:
            return f"the client {client.name!r} does not allow {self.alg} (it allows {', '.join(client.algorithms)})"
        registered = client.static_keys.get(self.kid)
        if registered is None:
            if client.jwks_url or client.allowed_jku:
                return None  # the key would be looked up in the client's JWK Set at run time
            return f"the client {client.name!r} has no key with kid {self.kid!r}"
        ours = self.public_jwk
        members = ("kty", "crv", "x", "y") if self.alg.startswith("ES") else ("kty", "n", "e")
        if any(registered.get(member) != ours.get(member) for member in members):
            return f"kid {self.kid!r} of the client {client.name!r} is another public key than this private key's"
        return None
