"""Fixtures for the authentication and SSRF tests."""
from __future__ import annotations

import pytest

from tests.auth.support import OPEN_APPS, SANDBOX_KID, HangingServer, LocalServer, new_key


@pytest.fixture(autouse=True)
def close_apps():
    yield
    while OPEN_APPS:
        OPEN_APPS.pop().extensions["fasciculation_cds"].fhir_client.close()


@pytest.fixture
def local_server():
    server = LocalServer().start()
    yield server
    server.stop()


@pytest.fixture
def tls_server():
    """An https server on 127.0.0.1 (production fetches JWK Sets over TLS only)."""
    server = LocalServer(tls=True).start()
    yield server
    server.stop()


@pytest.fixture
def hanging_server():
    server = HangingServer().start()
    yield server
    server.stop()


@pytest.fixture
def other_server():
    server = LocalServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def es384():
    return new_key("ES384")


@pytest.fixture(scope="session")
def rs384():
    return new_key("RS384")


@pytest.fixture(scope="session")
def sandbox_shaped_key():
    """Our own ES384 key under the sandbox's kid: the sandbox's private key is public, so never used."""
    return new_key("ES384", kid=SANDBOX_KID)
