"""The verifier reads a token's segments by PyJWT's rules, and trusts only what PyJWT verified.

TokenVerifier reads the header and claims itself (to pick the client and key) and leaves decoding and
verifying the whole token to PyJWT once. Whatever PyJWT's own decoding refuses, the reading refuses,
and where both read a token they read the same header and payload.
"""
from __future__ import annotations

import base64

import jwt
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.auth.tokens import InvalidToken, TokenVerifier

PYJWT = jwt.PyJWS()


def pyjwt_reads(token: str) -> tuple[dict, dict] | None:
    try:
        parts = PYJWT.decode_complete(token, options={"verify_signature": False})
        claims = orjson.loads(parts["payload"])
    except (jwt.PyJWTError, orjson.JSONDecodeError, UnicodeError, TypeError, ValueError):
        return None
    return (parts["header"], claims) if isinstance(parts["header"], dict) and isinstance(claims, dict) else None


def verifier_reads(token: str) -> tuple[dict, dict] | None:
    try:
        header, claims, _ = TokenVerifier._unverified_parts(token)
    except InvalidToken:
        return None
    return header, claims


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


HEADER = b64(b'{"alg":"RS384","typ":"JWT","kid":"k"}')
PAYLOAD = b64(b'{"iss":"https://ehr.example","jti":"1"}')

segment_chars = st.text(alphabet="ABCabcxyz0129-_+/=.!\u00e9 ", max_size=24)


@settings(max_examples=400, deadline=None)
@given(st.lists(segment_chars, min_size=1, max_size=4).map(".".join))
def test_arbitrary_strings_are_read_exactly_when_pyjwt_reads_them(token):
    assert verifier_reads(token) == pyjwt_reads(token)


@settings(max_examples=400, deadline=None)
@given(header=st.sampled_from([HEADER, HEADER + "=", HEADER + "==", HEADER[:-1], HEADER + "A"]),
       payload=st.sampled_from([PAYLOAD, PAYLOAD + "=", PAYLOAD[:-1] + "B", PAYLOAD + "=="]),
       signature=st.text(alphabet="AQgw-_=+/!", max_size=12))
def test_padding_trailing_bits_and_junk_are_judged_as_pyjwt_judges_them(header, payload, signature):
    token = f"{header}.{payload}.{signature}"
    assert verifier_reads(token) == pyjwt_reads(token)


@pytest.mark.parametrize("token", [
    f"{HEADER}.{PAYLOAD}.c2ln",               # a well-formed token (its signature is not checked here)
    f"{HEADER}.{PAYLOAD}.",                   # empty signature: PyJWT reads it, verification refuses it
    f"{HEADER}.{PAYLOAD}.!!!!",               # junk in the signature (GHSA-hxm8-2xgr-2p9m)
    f"{HEADER}.{PAYLOAD}",                    # two segments
    f"{HEADER}.{PAYLOAD}.c2ln.c2ln",          # four
    f"{HEADER}.{b64(b'[1]')}.c2ln",           # a payload that is not an object
    f"{HEADER}.{PAYLOAD}.тест",               # not ASCII
])
def test_known_shapes_agree_with_pyjwt(token):
    assert verifier_reads(token) == pyjwt_reads(token)
