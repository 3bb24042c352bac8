"""fhirServer is queried only where the authenticated client may send the service, and never inward."""
from __future__ import annotations

import socket

import pytest

from service.ssrf import LOOPBACK_ALLOWED, PRIVATE_ALLOWED, PUBLIC_ONLY, ForbiddenAddress, address_refusal, vetted_addresses
from tests.auth.support import SERVICE_PATH, app_with, bearer, client_entry, fetching_request, mint, production_app


@pytest.fixture
def fake_dns(monkeypatch):
    """Names in `table` resolve to the given addresses; every lookup is recorded."""
    real = socket.getaddrinfo
    table: dict[str, list[str]] = {}
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        lookups.append(host)
        if host not in table:
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0)) if ":" in ip
                else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in table[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table, lookups


def serve(tmp_path, es384, *grants):
    app = production_app(tmp_path, client_entry(es384, fhir_servers=list(grants)))
    return lambda body: app.test_client().post(SERVICE_PATH, json=body, headers=bearer(mint(es384)))


def diagnostics(response, status: int = 412) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    return " ".join(issue["diagnostics"] for issue in response.get_json()["issue"])


# -- the address rules --------------------------------------------------------------------------

@pytest.mark.parametrize("address,policy,refused", [
    ("93.184.215.14", PUBLIC_ONLY, None),
    ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", PUBLIC_ONLY, None),
    ("169.254.169.254", PUBLIC_ONLY, "metadata"),
    ("169.254.169.254", PRIVATE_ALLOWED, "metadata"),
    ("fd00:ec2::254", PRIVATE_ALLOWED, "metadata"),
    ("::ffff:169.254.169.254", PRIVATE_ALLOWED, "metadata"),
    ("64:ff9b::a9fe:a9fe", PRIVATE_ALLOWED, "metadata"),
    ("2002:a9fe:a9fe::1", PRIVATE_ALLOWED, "metadata"),
    ("168.63.129.16", PRIVATE_ALLOWED, "metadata"),
    ("10.1.2.3", PUBLIC_ONLY, "private"),
    ("172.16.0.1", PUBLIC_ONLY, "private"),
    ("192.168.1.1", PUBLIC_ONLY, "private"),
    ("100.64.0.1", PUBLIC_ONLY, "private"),
    ("169.254.1.1", PUBLIC_ONLY, "link-local"),
    ("fe80::1%eth0", PUBLIC_ONLY, "link-local"),
    ("fc00::1", PUBLIC_ONLY, "private"),
    ("::ffff:10.0.0.1", PUBLIC_ONLY, "private"),
    ("10.1.2.3", PRIVATE_ALLOWED, None),
    ("127.0.0.1", PUBLIC_ONLY, "loopback"),
    ("::1", PUBLIC_ONLY, "loopback"),
    ("127.0.0.1", LOOPBACK_ALLOWED, None),
    ("10.1.2.3", LOOPBACK_ALLOWED, "private"),
    ("0.0.0.0", PRIVATE_ALLOWED, "reserved"),
    ("224.0.0.1", PRIVATE_ALLOWED, "multicast"),
    ("240.0.0.1", PRIVATE_ALLOWED, "reserved"),
])
def test_address_rules(address, policy, refused):
    reason = address_refusal(address, policy)
    assert (reason is None) if refused is None else (refused in reason)


def test_one_refused_address_refuses_the_whole_host(fake_dns):
    table, _ = fake_dns
    table["rebind.test"] = ["93.184.215.14", "10.0.0.1"]
    with pytest.raises(ForbiddenAddress) as refused:
        vetted_addresses("rebind.test", 443, PUBLIC_ONLY)
    assert "10.0.0.1" not in str(refused.value)


# -- through the service: nothing reaches the address ------------------------------------------------
# A server the client has not registered is 403 (service/patient_scope.py); one it may not reach, 412.

def test_a_host_not_registered_for_the_client_is_refused_without_a_lookup(tmp_path, es384, fake_dns):
    _, lookups = fake_dns
    call = serve(tmp_path, es384, "https://fhir.hospital.test/R4")
    text = diagnostics(call(fetching_request("https://evil.test/fhir")), 403)
    assert "not a FHIR server registered for this CDS client" in text
    assert "evil.test" not in lookups


def test_http_is_refused_where_https_is_registered(tmp_path, es384, fake_dns):
    _, lookups = fake_dns
    call = serve(tmp_path, es384, "https://fhir.hospital.test/R4")
    assert "must use https" in diagnostics(call(fetching_request("http://fhir.hospital.test/R4")), 403)
    assert lookups == []


@pytest.mark.parametrize("private_network", [False, True])
def test_cloud_metadata_is_refused_even_for_a_registered_host(tmp_path, es384, fake_dns, private_network):
    table, _ = fake_dns
    table["metadata.hospital.test"] = ["169.254.169.254"]
    call = serve(tmp_path, es384, {"url": "https://metadata.hospital.test/R4", "private_network": private_network},
                 {"url": "http://169.254.169.254/latest", "private_network": private_network})
    for base in ("https://metadata.hospital.test/R4", "http://169.254.169.254/latest"):
        text = diagnostics(call(fetching_request(base)))
        assert "cloud metadata address, which is not allowed" in text
        assert "169.254" not in text.replace(base, "")  # the resolved address is not echoed


def test_a_private_address_is_refused_unless_the_base_is_marked_private(tmp_path, es384, fake_dns, local_server):
    table, _ = fake_dns
    table["fhir.internal.test"] = ["10.1.2.3"]
    call = serve(tmp_path, es384, "https://fhir.internal.test/R4")
    assert "private or link-local address" in diagnostics(call(fetching_request("https://fhir.internal.test/R4")))

    # Marked private_network: connected to, by the vetted address (here the local test server).
    table["fhir.internal.test"] = ["127.0.0.1"]
    base = f"http://fhir.internal.test:{local_server.port}/fhir"
    local_server.serve_empty_fhir()
    call = serve(tmp_path, es384, {"url": base, "private_network": True})
    response = call(fetching_request(base))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert {r.host for r in local_server.requests} == {f"fhir.internal.test:{local_server.port}"}


def test_loopback_is_refused_for_a_public_registration(tmp_path, es384, local_server):
    base = local_server.serve_empty_fhir()
    call = serve(tmp_path, es384, base)  # registered, but not marked private_network
    assert "loopback address" in diagnostics(call(fetching_request(base)))
    assert local_server.requests == []


def test_a_redirect_to_another_host_is_not_followed(tmp_path, es384, local_server, other_server):
    other_server.serve_empty_fhir()
    local_server.redirect("/fhir", other_server.root + "/fhir/Patient/p1")
    base = local_server.root + "/fhir"
    call = serve(tmp_path, es384, {"url": base, "private_network": True})
    assert "another origin" in diagnostics(call(fetching_request(base)))
    assert other_server.requests == []
    assert local_server.requests  # asked once, answered with the redirect


def test_a_registered_server_needs_fhir_authorization_unless_open(tmp_path, es384, local_server):
    base = local_server.serve_empty_fhir()
    call = serve(tmp_path, es384, {"url": base, "private_network": True})
    assert "no fhirAuthorization" in diagnostics(call(fetching_request(base, token=False)))
    open_call = serve(tmp_path, es384, {"url": base, "private_network": True, "without_token": True})
    assert open_call(fetching_request(base, token=False)).status_code == 200
    assert all(r.authorization is None for r in local_server.requests)


def test_the_registered_base_is_what_gets_connected_to(tmp_path, es384, local_server):
    """The request's spelling (user info, case, trailing slash) never reaches the connection."""
    base = local_server.serve_empty_fhir()
    call = serve(tmp_path, es384, {"url": base, "private_network": True})
    sneaky = f"HTTP://attacker.test@127.0.0.1:{local_server.port}/fhir/"
    assert call(fetching_request(sneaky)).status_code == 200
    assert {r.authorization.startswith("Bearer tok-") for r in local_server.requests} == {True}


# -- development mode (unsigned calls) ----------------------------------------------------------------

@pytest.mark.parametrize("base,reason", [
    ("http://169.254.169.254/latest", "cloud metadata"),
    ("http://10.0.0.5/fhir", "private or link-local"),
])
def test_unsigned_development_calls_still_cannot_reach_metadata_or_private_networks(base, reason):
    response = app_with().test_client().post(SERVICE_PATH, json=fetching_request(base))
    assert reason in diagnostics(response)
