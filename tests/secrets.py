"""Secrets the tests hand to the service, so the suite can prove none of them is ever logged."""
import secrets

ISSUED: set[str] = set()


def secret_token() -> str:
    token = "tok-" + secrets.token_urlsafe(24)
    ISSUED.add(token)
    return token
