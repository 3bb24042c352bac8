"""Recognising the public CDS Hooks Sandbox (https://sandbox.cds-hooks.org) in the trusted clients.

The sandbox signs its calls with a private key that is published in its source repository
(cds-hooks/sandbox, keys/ecprivkey.pem), so anyone can mint a token that verifies with its public
key. A client entry is the sandbox when it names the sandbox's issuer, lists its public key, or
fetches keys from the sandbox's host: production refuses all three unless told otherwise
(CDS_INSECURE_ALLOW_SANDBOX_IN_PRODUCTION).
"""
from __future__ import annotations

from urllib.parse import urlsplit

from service.auth.clients import TrustedClient

SANDBOX_ISSUER = "https://sandbox.cds-hooks.org"
SANDBOX_HOST = "sandbox.cds-hooks.org"
# The sandbox's published ES384 public key (build/.well-known/jwks.json): its P-384 coordinates.
SANDBOX_PUBLIC_KEY = ("dw_JGR8nB2I6XveNxUOl2qk699ZPLM2nYI5STSdiEl9avAkrm3CkfYMbrrjr8laB",
                      "Sm3mLE-n1zYNla_aiE3cb3nZsL51RbC7ysw3q8aJLxGm-hx79RPMYpITDjp7kgzy")


def trusts_sandbox(client: TrustedClient) -> bool:
    """Whether this entry accepts tokens anyone can sign with the sandbox's published key."""
    if client.iss.rstrip("/") == SANDBOX_ISSUER:
        return True
    if any((jwk.get("x"), jwk.get("y")) == SANDBOX_PUBLIC_KEY for jwk in client.static_keys.values()):
        return True
    urls = [*client.allowed_jku, *([client.jwks_url] if client.jwks_url else [])]
    return any((urlsplit(url).hostname or "").lower() == SANDBOX_HOST for url in urls)
