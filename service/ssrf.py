"""Which network addresses the service may connect to when a caller names the server.

The EHR names the FHIR server (`fhirServer`) and the service sends a bearer token there, so a
forged or careless `fhirServer` must never reach the hospital's internal network, the host the
service runs on, or a cloud metadata endpoint (where instance credentials live). The host is
resolved here and every address it resolves to is vetted; the connection is then made to a
vetted address, so DNS cannot answer one way for the check and another way for the
connection (DNS rebinding).

`VettedAdapter` puts the check into `requests` at the moment a connection is opened, which
covers the first request, same-origin redirects and Bundle `next` pages alike.
"""
from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError, NewConnectionError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# No FHIR server lives on these, so they stay refused even where private networks are allowed.
CLOUD_METADATA_ADDRESSES = frozenset(ipaddress.ip_address(address) for address in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle Cloud
    "169.254.170.2",    # AWS ECS task metadata
    "fd00:ec2::254",    # AWS IMDS over IPv6
    "100.100.100.200",  # Alibaba Cloud
    "168.63.129.16",    # Azure WireServer (a public address, hence listed)
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class AddressPolicy:
    """What besides public addresses a connection may reach."""

    allow_loopback: bool = False
    allow_private: bool = False  # RFC 1918, unique-local, link-local, shared (CGNAT) ranges


PUBLIC_ONLY = AddressPolicy()
LOOPBACK_ALLOWED = AddressPolicy(allow_loopback=True)
PRIVATE_ALLOWED = AddressPolicy(allow_loopback=True, allow_private=True)


class ForbiddenAddress(ValueError):
    """The host resolves to an address the policy refuses. The message names no address.

    A ValueError, not an OSError: urllib3 must not retry it or wrap it as a network error.
    """


def address_refusal(address: str, policy: AddressPolicy) -> str | None:
    """Why `address` may not be connected to under `policy`, or None when it may."""
    ip = _embedded_ipv4(ipaddress.ip_address(address.split("%", 1)[0]))  # drop an IPv6 zone id
    if ip in CLOUD_METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:  # before is_reserved, which ::1 also is
        return None if policy.allow_loopback else "a loopback address"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return "a reserved or multicast address"
    if ip.is_global:
        return None
    return None if policy.allow_private else "a private or link-local address"


def _embedded_ipv4(ip: IPAddress) -> IPAddress:
    # An IPv6 form of an IPv4 address reaches that IPv4 host: judge the IPv4 address.
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return ip.ipv4_mapped
        if ip.sixtofour:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def vetted_addresses(host: str, port: int, policy: AddressPolicy) -> list[str]:
    """Resolve `host`; return its addresses when every one is allowed, else raise ForbiddenAddress.

    One refused address refuses the host: an attacker's DNS could otherwise answer with a
    public and a private address and let the connection pick the private one.
    """
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    for address in addresses:
        refusal = address_refusal(address, policy)
        if refusal:
            raise ForbiddenAddress(f"the server's host resolves to {refusal}, which is not allowed")
    return addresses


# -- requests / urllib3 plumbing -------------------------------------------------------------

def _connect_vetted(connection: HTTPConnection, policy: AddressPolicy,
                    connect: Callable[[], socket.socket]) -> socket.socket:
    # urllib3 connects to `_dns_host`; pointing it at each vetted address in turn keeps
    # urllib3's own timeouts and errors, while `host` (TLS SNI and certificate checks)
    # is restored before the TLS handshake reads it.
    hostname = connection._dns_host
    try:
        addresses = vetted_addresses(hostname, connection.port, policy)
    except socket.gaierror as error:
        raise NameResolutionError(connection.host, connection, error) from error
    try:
        for address in addresses[:-1]:
            connection._dns_host = address
            try:
                return connect()
            except NewConnectionError:
                continue
        connection._dns_host = addresses[-1]
        return connect()
    finally:
        connection._dns_host = hostname


@functools.cache
def _pool_classes(policy: AddressPolicy) -> dict[str, type[HTTPConnectionPool]]:
    class VettedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return _connect_vetted(self, policy, super()._new_conn)

    class VettedHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return _connect_vetted(self, policy, super()._new_conn)

    class VettedHTTPConnectionPool(HTTPConnectionPool):
        ConnectionCls = VettedHTTPConnection

    class VettedHTTPSConnectionPool(HTTPSConnectionPool):
        ConnectionCls = VettedHTTPSConnection

    return {"http": VettedHTTPConnectionPool, "https": VettedHTTPSConnectionPool}


class VettedAdapter(HTTPAdapter):
    """A requests adapter whose every new connection goes only to addresses `policy` allows."""

    def __init__(self, policy: AddressPolicy, **kwargs):
        self.address_policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.address_policy)
