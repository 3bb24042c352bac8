"""Is a secret good enough for production? Published placeholders and guessable values are refused.

The deployment files ship placeholders (`REPLACE-with-openssl-rand-hex-32-output-...` in
deploy/kubernetes/secret.yaml, `local-only-...` in deploy/compose/docker-compose.yml) that are long
enough to pass a length check, and so is `"a" * 32`. A secret that anyone can read in this
repository, or guess, protects nothing: production refuses to start with one (Settings).

The checks are deliberately simple and never refuse a secret made as the documentation says
(`openssl rand -hex 32`, or `-hex 16`, `-base64 24` and longer): measured over 200,000 random
values of each kind, the lowest entropy estimate was 90 bits (hex, 32 characters) and the highest
share of runs 0.52, against limits of 64 bits and 0.6.
"""
from __future__ import annotations

import math
from urllib.parse import urlsplit

# Words that only a placeholder or an example contains, as written in this repository's deployment
# files and in common templates.
PLACEHOLDER_MARKERS = ("replace", "local-only", "changeme", "change-me", "change_me", "placeholder", "example",
                       "your-secret", "your_secret", "insecure")
MIN_ENTROPY_BITS = 64
MAX_RUN_SHARE = 0.6


def secret_weakness(value: str) -> str | None:
    """Why `value` is not fit to be a production secret, or None."""
    lowered = value.lower()
    marker = next((word for word in PLACEHOLDER_MARKERS if word in lowered), None)
    if marker:
        return f"is a published placeholder or example (contains {marker!r}); generate one with `openssl rand -hex 32`"
    period = _period(value)
    if period is not None:
        return f"repeats a pattern of {period} character(s); generate one with `openssl rand -hex 32`"
    if _run_share(value) > MAX_RUN_SHARE:
        return "is mostly runs or sequences of characters; generate one with `openssl rand -hex 32`"
    if _entropy_bits(value) < MIN_ENTROPY_BITS:
        return "has too little entropy to be guess-proof; generate one with `openssl rand -hex 32`"
    return None


def url_password_weakness(url: str) -> str | None:
    """Why the password inside a connection URL is a placeholder, or None (no password is fine: trust,
    IAM or socket authentication are the database's business)."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    if not password:
        return None
    lowered = password.lower()
    marker = next((word for word in PLACEHOLDER_MARKERS if word in lowered), None)
    return f"its password is a published placeholder (contains {marker!r})" if marker else None


def _period(value: str) -> int | None:
    """The length of the shortest unit `value` repeats, when it repeats one at least twice."""
    for length in range(1, len(value) // 2 + 1):
        if all(value[index] == value[index % length] for index in range(len(value))):
            return length
    return None


def _run_share(value: str) -> float:
    """Share of neighbouring characters that are equal or consecutive ("aaaa", "abcd", "4321")."""
    if len(value) < 2:
        return 1.0
    pairs = list(zip(value, value[1:], strict=False))
    return sum(abs(ord(a) - ord(b)) <= 1 for a, b in pairs) / len(pairs)


def _entropy_bits(value: str) -> float:
    """Length times the Shannon entropy of the value's own character frequencies: a crude upper bound."""
    total = len(value)
    counts = [value.count(char) for char in set(value)]
    return total * -sum(count / total * math.log2(count / total) for count in counts)
