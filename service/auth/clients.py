"""The trusted CDS clients (EHRs), read from one YAML or JSON file and validated at start.

    clients:
      - name: acme-epic                     # optional label for logs
        iss: https://ehr.acme.example/      # required: the JWT's iss
        tenant: acme                        # optional: when set, the JWT's tenant must equal it
        algorithms: [RS384]                 # optional: default ES384, RS384
        jwks: {keys: [...]}                 # public keys inline, and/or
        jwks_file: acme.jwks.json           #   in a file (relative to this file), and/or
        jwks_url: https://ehr.acme.example/jwks   # fetched (cached), and/or
        jku: [https://ehr.acme.example/jwks]      # jku header values allowed (fetched when sent)
        audiences: [https://cds.acme.example/epic]  # optional: aud values it sends besides the URL called
        fhir_servers:                       # FHIR bases the service may query for this client
          - https://fhir.acme.example/R4    # https, public address, only with fhirAuthorization
          - url: https://fhir.internal.acme/R4
            private_network: true           # may resolve to a private address
          - url: https://open.example/fhir
            without_token: true             # an open server: queried without fhirAuthorization
        allowed_link_hosts: [doi.org, "*.nice.org.uk"]  # optional: card links to other hosts are removed
        cds_hooks_1_0_cards: at-most-one    # optional: CDS Hooks 1.0 cards (or one-suggestion-per-card)

One issuer may appear several times with different tenants (Oracle Health signs for every
health system with one iss); an entry without tenant accepts any tenant of that issuer.
A file that is wrong in any way stops the service with a one-line reason.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import yaml

from service.auth import algorithms
from service.config import ConfigError

_PRIVATE_KEY_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")
_CLIENT_FIELDS = {"name", "iss", "tenant", "algorithms", "jwks", "jwks_file", "jwks_url", "jku",
                  "fhir_servers", "description", "audiences", "allowed_link_hosts", "cds_hooks_1_0_cards"}
# How cards are shaped for a client that reads CDS Hooks 1.0 responses (service/client_profile.py).
CDS_HOOKS_1_0_SHAPES = ("at-most-one", "one-suggestion-per-card")
_GRANT_FIELDS = {"url", "private_network", "without_token"}


@dataclass(frozen=True)
class FhirServerGrant:
    """One FHIR base URL a client may send as fhirServer, and how it may be reached."""

    base_url: str
    private_network: bool = False
    without_token: bool = False


@dataclass(frozen=True)
class TrustedClient:
    name: str
    iss: str
    tenant: str | None
    algorithms: tuple[str, ...]
    static_keys: Mapping[str, Mapping[str, Any]] = field(repr=False)  # kid -> public JWK
    jwks_url: str | None
    allowed_jku: frozenset[str]
    fhir_servers: tuple[FhirServerGrant, ...]
    # `aud` values the client sends besides the URL called (Epic's aud is set by hand per health system).
    audiences: frozenset[str] = frozenset()
    # Host names (exact, or "*.domain" for its subdomains) card links may point at; None: any.
    allowed_link_hosts: tuple[str, ...] | None = None
    # None: CDS Hooks 2.0 cards; else the 1.0 shape the client asked for (CDS_HOOKS_1_0_SHAPES).
    cds_hooks_1_0_cards: str | None = None

    def grant_for(self, fhir_server: str) -> FhirServerGrant | None:
        wanted = normalise_base_url(fhir_server)
        return next((grant for grant in self.fhir_servers if grant.base_url == wanted), None)


@dataclass(frozen=True)
class TrustedClients:
    clients: tuple[TrustedClient, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.clients)

    def find(self, iss: str, tenant: str | None) -> TrustedClient | None:
        """The entry for this issuer and tenant; an entry without tenant matches any tenant."""
        for_issuer = [client for client in self.clients if client.iss == iss]
        exact = next((client for client in for_issuer if client.tenant is not None and client.tenant == tenant), None)
        return exact or next((client for client in for_issuer if client.tenant is None), None)


def normalise_base_url(url: str) -> str:
    """Compare FHIR bases by scheme, lower-case host, non-default port and path (no trailing /)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    netloc = parts.netloc.rpartition("@")[2].lower()
    default_port = {"http": ":80", "https": ":443"}.get(scheme)
    if default_port and netloc.endswith(default_port):
        netloc = netloc.removesuffix(default_port)
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def load_trusted_clients(path: str | Path) -> TrustedClients:
    """Read and validate the file; raise ConfigError naming the file and the bad field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except OSError as error:
        raise _error(path, f"cannot read it ({error.strerror or error})") from None
    except (ValueError, yaml.YAMLError) as error:
        raise _error(path, f"not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'} "
                           f"({' '.join(str(error).split())})") from None
    try:
        return parse_trusted_clients(document, base_dir=path.parent)
    except _Invalid as invalid:
        raise _error(path, str(invalid)) from None


def parse_trusted_clients(document: Any, *, base_dir: Path) -> TrustedClients:
    if not isinstance(document, dict) or set(document) != {"clients"}:
        raise _Invalid("the top level must be an object with only a 'clients' list")
    entries = document["clients"]
    if not isinstance(entries, list):
        raise _Invalid("clients must be a list")
    clients = tuple(_client(entry, f"clients[{index}]", base_dir) for index, entry in enumerate(entries))
    seen: set[tuple[str, str | None]] = set()
    for index, client in enumerate(clients):
        if (client.iss, client.tenant) in seen:
            raise _Invalid(f"clients[{index}]: iss {client.iss!r} with tenant {client.tenant!r} is listed twice")
        seen.add((client.iss, client.tenant))
    return TrustedClients(clients)


class _Invalid(ValueError):
    pass


def _error(path: Path, reason: str) -> ConfigError:
    return ConfigError(f"CDS_TRUSTED_CLIENTS_FILE={str(path)!r}: {reason}")


def _client(entry: Any, where: str, base_dir: Path) -> TrustedClient:
    if not isinstance(entry, dict):
        raise _Invalid(f"{where} must be an object")
    unknown = set(entry) - _CLIENT_FIELDS
    if unknown:
        raise _Invalid(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    iss = _string(entry, "iss", where, required=True)
    tenant = _string(entry, "tenant", where)
    static_keys: dict[str, Mapping[str, Any]] = {}
    if "jwks" in entry:
        static_keys.update(_jwks(entry["jwks"], f"{where}.jwks"))
    jwks_file = _string(entry, "jwks_file", where)
    if jwks_file:
        static_keys.update(_jwks(_read_json(base_dir / jwks_file, f"{where}.jwks_file"), f"{where}.jwks_file"))
    jwks_url = _string(entry, "jwks_url", where)
    if jwks_url:
        _absolute_url(jwks_url, f"{where}.jwks_url")
    allowed_jku = frozenset(_absolute_url(url, f"{where}.jku") for url in _string_list(entry, "jku", where))
    if not (static_keys or jwks_url or allowed_jku):
        raise _Invalid(f"{where}: give the client's public keys (jwks, jwks_file, jwks_url or jku)")
    return TrustedClient(
        name=_string(entry, "name", where) or (iss if tenant is None else f"{iss} ({tenant})"),
        iss=iss,
        tenant=tenant,
        algorithms=_algorithms(entry, where),
        static_keys=static_keys,
        jwks_url=jwks_url,
        allowed_jku=allowed_jku,
        fhir_servers=tuple(_grant(item, f"{where}.fhir_servers[{index}]")
                           for index, item in enumerate(_list(entry, "fhir_servers", where))),
        audiences=frozenset(_string_list(entry, "audiences", where)),
        allowed_link_hosts=_link_hosts(entry, where),
        cds_hooks_1_0_cards=_choice(entry, "cds_hooks_1_0_cards", where, CDS_HOOKS_1_0_SHAPES),
    )


def _link_hosts(entry: Mapping[str, Any], where: str) -> tuple[str, ...] | None:
    if "allowed_link_hosts" not in entry:
        return None
    hosts = []
    for host in _string_list(entry, "allowed_link_hosts", where):
        bare = host.lower().removeprefix("*.")
        if not bare or any(char in bare for char in "/:@?#* ") or bare.startswith(".") or bare.endswith("."):
            raise _Invalid(f"{where}.allowed_link_hosts: {host!r} is not a host name (or *.domain)")
        hosts.append(host.lower())
    return tuple(hosts)


def _choice(entry: Mapping[str, Any], key: str, where: str, allowed: tuple[str, ...]) -> str | None:
    value = _string(entry, key, where)
    if value is not None and value not in allowed:
        raise _Invalid(f"{where}.{key} must be one of {', '.join(allowed)}")
    return value


def _algorithms(entry: Mapping[str, Any], where: str) -> tuple[str, ...]:
    names = _string_list(entry, "algorithms", where) if "algorithms" in entry else list(algorithms.DEFAULT_ALGORITHMS)
    if not names:
        raise _Invalid(f"{where}.algorithms must not be empty")
    for name in names:
        refusal = algorithms.refusal(name)
        if refusal:
            raise _Invalid(f"{where}.algorithms: {refusal}")
    return tuple(dict.fromkeys(names))


def _jwks(value: Any, where: str) -> dict[str, Mapping[str, Any]]:
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list) or not value["keys"]:
        raise _Invalid(f"{where} must be a JWK Set: an object with a non-empty 'keys' list")
    keys: dict[str, Mapping[str, Any]] = {}
    for index, jwk in enumerate(value["keys"]):
        here = f"{where}.keys[{index}]"
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
            raise _Invalid(f"{here} must be a JWK with a kid")
        if any(member in jwk for member in _PRIVATE_KEY_MEMBERS):
            raise _Invalid(f"{here} holds private or symmetric key material; configure only public keys")
        if jwk.get("kty") not in ("EC", "RSA"):
            raise _Invalid(f"{here}: kty must be EC or RSA")
        try:
            key = jwt.PyJWK(jwk)
        except jwt.PyJWTError as error:
            raise _Invalid(f"{here}: not a usable public key ({type(error).__name__})") from None
        if jwk["kty"] == "RSA" and key.key.key_size < 2048:
            raise _Invalid(f"{here}: RSA keys must be at least 2048 bits")
        if jwk["kid"] in keys:
            raise _Invalid(f"{here}: kid {jwk['kid']!r} appears twice")
        keys[jwk["kid"]] = dict(jwk)
    return keys


def _read_json(path: Path, where: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise _Invalid(f"{where}: cannot read {str(path)!r} ({error.strerror or error})") from None
    except ValueError:
        raise _Invalid(f"{where}: {str(path)!r} is not valid JSON") from None


def _grant(item: Any, where: str) -> FhirServerGrant:
    if isinstance(item, str):
        item = {"url": item}
    if not isinstance(item, dict):
        raise _Invalid(f"{where} must be a URL or an object with a url")
    unknown = set(item) - _GRANT_FIELDS
    if unknown:
        raise _Invalid(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    url = _absolute_url(_string(item, "url", where, required=True), f"{where}.url")
    if urlsplit(url).query or urlsplit(url).fragment:
        raise _Invalid(f"{where}.url must be a FHIR base URL without query or fragment")
    flags = {}
    for flag in ("private_network", "without_token"):
        value = item.get(flag, False)
        if not isinstance(value, bool):
            raise _Invalid(f"{where}.{flag} must be true or false")
        flags[flag] = value
    return FhirServerGrant(normalise_base_url(url), **flags)


def _string(entry: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = entry.get(key)
    if value is None:
        if required:
            raise _Invalid(f"{where}.{key} is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"{where}.{key} must be a non-empty string")
    return value.strip()


def _list(entry: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = entry.get(key, [])
    if not isinstance(value, list):
        raise _Invalid(f"{where}.{key} must be a list")
    return value


def _string_list(entry: Mapping[str, Any], key: str, where: str) -> list[str]:
    values = _list(entry, key, where)
    if not all(isinstance(value, str) and value.strip() for value in values):
        raise _Invalid(f"{where}.{key} must be a list of non-empty strings")
    return [value.strip() for value in values]


def _absolute_url(url: str, where: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Invalid(f"{where}: {url!r} is not an absolute http(s) URL")
    return url
