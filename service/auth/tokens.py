"""Verify the JWT a CDS client sends (CDS Hooks 2.0 "Trusting CDS Clients").

Cheap checks come first and need no key: header shape and algorithm, a trusted `iss` (and
`tenant`), an allowlisted `jku`, `aud` equal to the URL called, the time claims, a `jti`.
Only then is a key looked up (which may fetch the client's JWK Set) and the signature
checked, and only a token with a valid signature spends its `jti`. Every refusal is an
InvalidToken whose reason is for the log, never for the caller.
"""
from __future__ import annotations

import binascii
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
import orjson

from service.auth import algorithms
from service.auth.clients import TrustedClient, TrustedClients
from service.auth.jwks import JwksCache, JwksUnavailable, KeyNotFound
from service.auth.replay import ReplayCache

MAX_TOKEN_CHARS = 16 * 1024
_MAX_CLAIM_CHARS = 1024
# JWS extensions the service does not implement; RFC 7515 says to refuse what is not understood.
_REFUSED_HEADERS = ("crit", "b64")
# A base64url segment as PyJWT accepts it: the URL-safe alphabet, at most two '=' of padding.
_SEGMENT = re.compile(rb"([A-Za-z0-9_-]*)(={0,2})")
_MAX_CACHED_KEYS = 64


Refuse = Callable[[str], "InvalidToken"]  # builds the refusal, carrying the claims for the log


@dataclass(frozen=True)
class AuthenticatedClient:
    """Who called: the verified issuer and tenant, the token's jti, and that client's configuration."""

    iss: str
    tenant: str | None
    jti: str
    client: TrustedClient


class InvalidToken(Exception):
    """The token is refused. `reason` and the claims are for the log; none is ever the token."""

    def __init__(self, reason: str, *, iss: Any = None, tenant: Any = None, jti: Any = None):
        super().__init__(reason)
        self.reason = reason
        self.iss = _loggable(iss)
        self.tenant = _loggable(tenant)
        self.jti = _loggable(jti)


def _loggable(value: Any) -> str | None:
    # Claims are attacker-chosen until verified: strings only, and short.
    return value[:200] if isinstance(value, str) else None


class TokenVerifier:
    def __init__(self, clients: TrustedClients, keys: JwksCache, replay: ReplayCache, *,
                 clock_skew_seconds: float, max_lifetime_seconds: float,
                 now: Callable[[], float] = time.time):
        self._clients = clients
        self._keys = keys
        self._replay = replay
        self._skew = clock_skew_seconds
        self._max_lifetime = max_lifetime_seconds
        self._now = now
        self._jws = jwt.PyJWS(options={"enforce_minimum_key_length": True})
        self._public_keys: dict[tuple[str, bytes], jwt.PyJWK] = {}

    def verify(self, token: str, audiences: Sequence[str]) -> AuthenticatedClient:
        """The authenticated client, or InvalidToken. ReplayStoreUnavailable passes through."""
        header, claims, payload = self._unverified_parts(token)
        iss, tenant, jti = claims.get("iss"), claims.get("tenant"), claims.get("jti")

        def refuse(reason: str) -> InvalidToken:
            return InvalidToken(reason, iss=iss, tenant=tenant, jti=jti)

        alg, kid, jku = self._checked_header(header, refuse)
        if not isinstance(iss, str) or not iss:
            raise refuse("iss is missing or not a string")
        if tenant is not None and not isinstance(tenant, str):
            raise refuse("tenant is not a string")
        client = self._clients.find(iss, tenant)
        if client is None:
            raise refuse("iss (with this tenant) is not a trusted client")
        if alg not in client.algorithms:
            raise refuse(f"alg {alg} is not allowed for this client")
        if jku is not None and jku not in client.allowed_jku:
            raise refuse("jku is not on the client's allowlist")
        self._check_audience(claims.get("aud"), [*audiences, *client.audiences], refuse)
        expires_at = self._check_times(claims, refuse)
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_CLAIM_CHARS:
            raise refuse("jti is missing or not a usable string")

        self._check_signature(token, payload, client, alg, kid, jku, refuse)
        if not self._replay.first_use(iss, jti, expires_at + self._skew):
            raise refuse("jti was already used (replay)")
        return AuthenticatedClient(iss=iss, tenant=tenant, jti=jti, client=client)

    # -- steps ---------------------------------------------------------------------------------

    @staticmethod
    def _unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
        """Header, claims and payload bytes, read to decide whether and with which key to verify.

        Nothing read here is trusted: PyJWT decodes and verifies the whole token once, in
        _check_signature, and the claims checked here must be the payload it verified. Reading the
        segments here, instead of a second PyJWT decode without verification (which checks every
        character in Python), saves ~50 µs of CPU a call (docs/performance.md). The segments are held
        to PyJWT's rules (alphabet, padding, canonical encoding; tests/auth/test_token_segments.py), so
        what PyJWT would refuse is refused here, as malformed, before any key is looked up."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("token is empty or too long")
        try:
            segments = token.encode("ascii").split(b".")
            if len(segments) != 3:
                raise ValueError("not three segments")
            header_bytes, payload, _signature = (_base64url_segment(segment) for segment in segments)
            header, claims = orjson.loads(header_bytes), orjson.loads(payload)
        except (orjson.JSONDecodeError, UnicodeError, ValueError, binascii.Error) as error:
            raise InvalidToken(f"malformed JWT ({type(error).__name__})") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise InvalidToken("JWT header or payload is not a JSON object")
        return header, claims, payload

    @staticmethod
    def _checked_header(header: dict[str, Any], refuse: Refuse) -> tuple[str, str, str | None]:
        alg = header.get("alg")
        refusal = algorithms.refusal(alg)
        if refusal:
            raise refuse(refusal)
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.upper() != "JWT":
            raise refuse("typ is not JWT")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > _MAX_CLAIM_CHARS:
            raise refuse("kid is missing or not a string")
        jku = header.get("jku")
        if jku is not None and not isinstance(jku, str):
            raise refuse("jku is not a string")
        for name in _REFUSED_HEADERS:
            if name in header:
                raise refuse(f"header {name!r} is not supported")
        return alg, kid, jku

    @staticmethod
    def _check_audience(aud: Any, audiences: Sequence[str], refuse: Refuse) -> None:
        values = [aud] if isinstance(aud, str) else aud
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise refuse("aud is missing or not a string or array of strings")
        if not any(value in audiences for value in values):
            raise refuse("aud is not the URL that was called")

    def _check_times(self, claims: dict[str, Any], refuse: Refuse) -> float:
        now = self._now()
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
        for name, value, required in (("exp", exp, True), ("iat", iat, True), ("nbf", nbf, False)):
            if value is None and not required:
                continue
            if not _is_number(value):
                raise refuse(f"{name} is missing or not a number")
        if exp <= now - self._skew:
            raise refuse("token has expired (exp)")
        if iat > now + self._skew:
            raise refuse("token is issued in the future (iat)")
        if nbf is not None and nbf > now + self._skew:
            raise refuse("token is not valid yet (nbf)")
        # The lifetime the client gave the token (Epic 900 s, the sandbox 300 s). With iat no later than
        # now + skew, this also bounds how long the jti must be remembered: exp <= now + skew + maximum.
        if exp - iat > self._max_lifetime:
            raise refuse("token lives longer than the accepted maximum (exp)")
        return float(exp)

    def _check_signature(self, token: str, payload: bytes, client: TrustedClient, alg: str, kid: str,
                         jku: str | None, refuse: Refuse) -> None:
        try:
            jwk = self._keys.key_for(client, kid, jku)
        except KeyNotFound:
            raise refuse("kid is not a key of this client") from None
        except JwksUnavailable as unavailable:
            raise refuse(f"the client's JWK Set could not be fetched ({unavailable})") from None
        mismatch = algorithms.key_mismatch(alg, dict(jwk))
        if mismatch:
            raise refuse(mismatch)
        try:
            verified = self._jws.decode_complete(token, key=self._public_key(jwk, alg), algorithms=[alg])
        except jwt.InvalidSignatureError:
            raise refuse("signature does not verify") from None
        except jwt.PyJWTError as error:
            raise refuse(f"signature cannot be checked ({type(error).__name__})") from None
        if verified["payload"] != payload:  # cannot happen for one token; never trust claims PyJWT did not verify
            raise refuse("malformed JWT (payload read twice differently)")

    def _public_key(self, jwk: Mapping[str, Any], alg: str) -> jwt.PyJWK:
        """A trusted client's key as PyJWT's key object, built once per key rather than on every call
        (~10-20 µs each). Keyed by the JWK's content, so a rotated or refetched key is built anew."""
        cache_key = (alg, orjson.dumps(dict(jwk), option=orjson.OPT_SORT_KEYS))
        key = self._public_keys.get(cache_key)
        if key is None:
            key = jwt.PyJWK(dict(jwk), algorithm=alg)
            if len(self._public_keys) >= _MAX_CACHED_KEYS:
                self._public_keys.clear()
            self._public_keys[cache_key] = key
        return key


def _base64url_segment(segment: bytes) -> bytes:
    """Decode one JWS segment under PyJWT's rules (jwt.api_jws): the base64url alphabet, at most two
    '=' and then only on a whole quantum, and the canonical encoding of what it decodes to."""
    match = _SEGMENT.fullmatch(segment)
    if match is None or (match.group(2) and len(segment) % 4) or len(match.group(1)) % 4 == 1:
        raise ValueError("not a base64url segment")
    stripped = match.group(1)
    decoded = binascii.a2b_base64(stripped.translate(_FROM_URLSAFE) + b"=" * (-len(stripped) % 4), strict_mode=True)
    if binascii.b2a_base64(decoded, newline=False).translate(_TO_URLSAFE).rstrip(b"=") != stripped:
        raise ValueError("not the canonical encoding")
    return decoded


_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
