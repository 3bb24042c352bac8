"""Signing keys, the trusted-clients file and pre-signed CDS Hooks JWTs for the benchmark.

The keys are generated for each benchmark run and never written anywhere but the run's temporary
directory. Every request carries its own JWT (a fresh `jti`; the service accepts each `jti` once), so
the tokens are signed ahead of each load run, between runs, on both cores, and handed to wrk as files.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://ehr.bench.example"
PUBLIC_BASE_URL = "https://cds.bench.example"
# Tokens are signed ahead of each load run, so they must outlive it: the benchmark's server is
# started with CDS_JWT_MAX_LIFETIME_SECONDS set to this (the default, 900 s, is what EHRs need).
TOKEN_LIFETIME_SECONDS = 3300


@dataclass(frozen=True)
class SigningKey:
    alg: str  # RS384 (Epic's algorithm) or ES384
    kid: str
    pem: bytes = field(repr=False)

    @classmethod
    def generate(cls, alg: str) -> SigningKey:
        private = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if alg.startswith("RS")
                   else ec.generate_private_key(ec.SECP384R1()))
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return cls(alg, f"bench-{alg.lower()}-{uuid.uuid4().hex[:8]}", pem)

    def public_jwk(self) -> dict[str, Any]:
        private = serialization.load_pem_private_key(self.pem, password=None)
        algorithm = RSAAlgorithm if self.alg.startswith("RS") else ECAlgorithm
        jwk = algorithm.to_jwk(private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


def write_trusted_clients(path: Path, keys: list[SigningKey], fhir_bases: list[str]) -> Path:
    """One trusted EHR with the benchmark's public keys and its (loopback, plain http) FHIR servers."""
    document = {"clients": [{
        "name": "benchmark-ehr",
        "iss": ISSUER,
        "algorithms": sorted({key.alg for key in keys}),
        "jwks": {"keys": [key.public_jwk() for key in keys]},
        "fhir_servers": [{"url": base, "private_network": True} for base in fhir_bases],
    }]}
    path.write_text(json.dumps(document, indent=2))
    return path


def audience(service_id: str) -> str:
    return f"{PUBLIC_BASE_URL}/cds-services/{service_id}"


_WORKER_KEY: Any = None


def _init_worker(pem: bytes) -> None:
    global _WORKER_KEY
    _WORKER_KEY = serialization.load_pem_private_key(pem, password=None)


def _mint_batch(args: tuple[str, str, str, int]) -> list[str]:
    alg, kid, aud, count = args
    jws = jwt.PyJWS()
    now = int(time.time())
    header = {"kid": kid, "typ": "JWT"}
    tokens = []
    for _ in range(count):
        claims = {"iss": ISSUER, "aud": aud, "exp": now + TOKEN_LIFETIME_SECONDS, "iat": now,
                  "jti": str(uuid.uuid4())}
        tokens.append(jws.encode(json.dumps(claims).encode(), _WORKER_KEY, algorithm=alg, headers=header))
    return tokens


class TokenMinter:
    """Signs batches of single-use JWTs on every core; each token is handed out once."""

    def __init__(self, key: SigningKey, aud: str, processes: int | None = None):
        self.key = key
        self.aud = aud
        self.minted = 0
        self._pool = ProcessPoolExecutor(max_workers=processes or os.cpu_count() or 1,
                                         initializer=_init_worker, initargs=(key.pem,))

    def mint(self, count: int) -> list[str]:
        if count <= 0:
            return []
        workers = self._pool._max_workers  # noqa: SLF001 - sizing the batches only
        chunks = [count // workers + (1 if i < count % workers else 0) for i in range(workers)]
        tokens = [token for batch in self._pool.map(
            _mint_batch, [(self.key.alg, self.key.kid, self.aud, n) for n in chunks if n]) for token in batch]
        self.minted += len(tokens)
        return tokens

    def write_files(self, prefix: Path, per_thread: list[int]) -> Iterator[Path]:
        """prefix.0, prefix.1, ...: one file of fresh tokens per wrk thread."""
        tokens = self.mint(sum(per_thread))
        start = 0
        for index, count in enumerate(per_thread):
            path = prefix.with_name(f"{prefix.name}.{index}")
            path.write_text("\n".join(tokens[start:start + count]) + "\n")
            start += count
            yield path

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
