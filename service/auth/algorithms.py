"""JWS algorithms the service can verify, and the key each one needs.

CDS Hooks forbids `none` and every symmetric (HMAC) algorithm: with HMAC the verification
key is the signing key, so a public key would become a forging key. ES384 and RS384 are the
spec's recommendation and the default; a client's configuration may allow others from this list.
"""
from __future__ import annotations

DEFAULT_ALGORITHMS = ("ES384", "RS384")

# alg -> (JWK kty, EC curve or None)
KEY_TYPE_BY_ALGORITHM: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
}


def refusal(alg: object) -> str | None:
    """Why `alg` is never accepted, or None when the service supports it."""
    if not isinstance(alg, str) or not alg:
        return "alg is missing or not a string"
    if alg.lower() == "none":
        return "alg 'none' is never accepted"
    if alg.upper().startswith("HS"):
        return f"alg {alg!r} is symmetric (HMAC) and never accepted"
    if alg not in KEY_TYPE_BY_ALGORITHM:
        return f"alg {alg!r} is not supported"
    return None


def key_mismatch(alg: str, jwk: dict) -> str | None:
    """Why the JWK cannot verify `alg` (wrong key type, curve or declared alg), or None."""
    kty, curve = KEY_TYPE_BY_ALGORITHM[alg]
    if jwk.get("kty") != kty:
        return f"key type {jwk.get('kty')!r} cannot verify {alg}"
    if curve and jwk.get("crv") != curve:
        return f"curve {jwk.get('crv')!r} cannot verify {alg}"
    if "alg" in jwk and jwk["alg"] != alg:
        return f"key is declared for {jwk['alg']!r}, token says {alg}"
    if jwk.get("use", "sig") != "sig":
        return "key is not a signing key"
    return None
