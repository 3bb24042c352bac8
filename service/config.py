"""Runtime settings, read once from environment variables and validated at start.

Every setting is declared in SETTINGS with its default and parser; the README's
configuration table documents the same list. Bad or missing values raise one ConfigError
listing every problem, each naming its variable, on one line, so `serve` stops with all
the reasons at once.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from service.secret_strength import secret_weakness, url_password_weakness


class ConfigError(ValueError):
    """Configuration values are invalid; str(error) is one line giving every reason."""

    def __init__(self, *problems: str):
        self.problems = problems
        text = problems[0] if len(problems) == 1 else f"{len(problems)} configuration problems: " + "; ".join(problems)
        super().__init__(text)


def _positive_float(upper: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not 0 < value <= upper:
            raise ValueError(f"must be > 0 and <= {upper}")
        return value
    return parse


def _int_between(lower: int, upper: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not lower <= value <= upper:
            raise ValueError(f"must be between {lower} and {upper}")
        return value
    return parse


def _choice(*allowed: str, case: Callable[[str], str]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = case(raw.strip())
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value
    return parse


def _upper_choice(*allowed: str) -> Callable[[str], str]:
    return _choice(*allowed, case=str.upper)


def _comma_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _origins(raw: str) -> tuple[str, ...]:
    origins = _comma_list(raw)
    for origin in origins:
        if origin != "*" and not _is_http_url(origin):
            raise ValueError(f"{origin!r} is not '*' or an http(s) origin")
    return origins


def _base_urls(raw: str) -> tuple[str, ...]:
    urls = _comma_list(raw)
    for url in urls:
        if not _is_http_url(url):
            raise ValueError(f"{url!r} is not an absolute http(s) URL")
    return tuple(url.rstrip("/") for url in urls)


def _is_loopback_url(value: str) -> bool:
    host = urlsplit(value).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _lower_choice(*allowed: str) -> Callable[[str], str]:
    return _choice(*allowed, case=str.lower)


def _optional_path(raw: str) -> str | None:
    return raw.strip() or None


def _public_base_url(raw: str) -> str | None:
    url = raw.strip()
    if not url:
        return None
    parts = urlsplit(url)
    if not _is_http_url(url) or parts.query or parts.fragment:
        raise ValueError("must be an absolute http(s) URL without query or fragment")
    return url.rstrip("/")


def _host(raw: str) -> str:
    host = raw.strip()
    if not host or any(char.isspace() or char in "/@?#" for char in host):
        raise ValueError("must be a host name or IP address")
    return host


def _optional_absolute_path(raw: str) -> str | None:
    path = raw.strip()
    if path and not path.startswith("/"):
        raise ValueError("must be an absolute path")
    return path or None


def _redis_url(raw: str) -> str | None:
    url = raw.strip()
    if url and urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return url or None


_DATABASE_SCHEMES = {"sqlite": "sqlite", "sqlite+pysqlite": "sqlite", "postgres": "postgresql+psycopg",
                     "postgresql": "postgresql+psycopg", "postgresql+psycopg": "postgresql+psycopg"}


def _database_url(raw: str) -> str | None:
    url = raw.strip()
    if not url:
        return None
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in _DATABASE_SCHEMES:
        raise ValueError("must be a postgresql:// (psycopg) or sqlite:/// URL")
    return f"{_DATABASE_SCHEMES[scheme.lower()]}://{rest}"


def _data_directory(raw: str) -> str:
    path = raw.strip()
    if not path:  # never the current directory: every command run from anywhere finds the same data
        data_home = os.environ.get("XDG_DATA_HOME", "").strip()
        if data_home.startswith("/"):
            return str(Path(data_home) / "fasciculation-cds")
        try:
            return str(Path.home() / ".local" / "share" / "fasciculation-cds")
        except RuntimeError:
            raise ValueError("unset, and there is no home directory to default to: set it") from None
    if not path.startswith("/"):
        raise ValueError("must be an absolute path (a relative one would change with the current directory)")
    return path


def _optional_secret(min_length: int) -> Callable[[str], str | None]:
    def parse(raw: str) -> str | None:
        value = raw.strip()
        if value and len(value) < min_length:
            raise ValueError(f"must be at least {min_length} characters (e.g. `openssl rand -hex 32`)")
        return value or None
    return parse


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no", ""):
        raise ValueError("must be true or false")
    return value in ("true", "1", "yes")


# The public CDS Hooks Sandbox's open test servers send no fhirAuthorization, so a
# developer trying the sandbox needs them allowed; hospitals override this list.
SANDBOX_OPEN_FHIR_SERVERS = (
    "https://launch.smarthealthit.org/v/r4/fhir",
    "https://r4.smarthealthit.org",
)


@dataclass(frozen=True)
class Setting:
    env: str
    default: str
    parse: Callable[[str], Any]
    doc: str
    secret: bool = False  # never echo the value (it may hold a password) in an error


# Epic's tokens live 900 s, the sandbox's 300 s (issue 15, item 8); `fasciculation-cds jwt` mints within it.
DEFAULT_JWT_MAX_LIFETIME_SECONDS = 900

SETTINGS: tuple[Setting, ...] = (
    Setting("CDS_LOCALE", "US", _upper_choice("US", "UK"),
            "Card wording and regulatory position: `US` (BMP, FDA) or `UK` (U&E, MHRA)."),
    Setting("CDS_CORS_ORIGINS", "*", _origins,
            "Comma-separated browser origins allowed by CORS, or `*` for any."),
    Setting("CDS_MODE", "development", _lower_choice("development", "production"),
            "`production`: every call needs a valid CDS Hooks JWT from a trusted client. `development`: "
            "unsigned calls are served, with a warning (never expose it). See docs/security.md."),
    Setting("CDS_PUBLIC_BASE_URL", "", _public_base_url,
            "The https URL EHRs call, without `/cds-services` (the JWT `aud` is checked against it). "
            "Required in production (http only on a loopback host, for a local stack)."),
    Setting("CDS_TRUSTED_CLIENTS_FILE", "", _optional_path,
            "YAML or JSON file of trusted CDS clients: issuers, keys, FHIR servers "
            "(examples in `deploy/trusted-clients/`). Required in production."),
    Setting("CDS_INSECURE_ALLOW_SANDBOX_IN_PRODUCTION", "false", _boolean,
            "`true` lets production trust the public CDS Hooks Sandbox, whose private key is published: anyone "
            "can then sign calls the service accepts. For demonstrations on synthetic data only; every start "
            "logs a warning. Without it production refuses to start with the sandbox profile."),
    Setting("CDS_JWT_CLOCK_SKEW_SECONDS", "300", _int_between(0, 600),
            "Clock skew allowed on the JWT's `exp`, `iat` and `nbf`."),
    Setting("CDS_JWT_MAX_LIFETIME_SECONDS", str(DEFAULT_JWT_MAX_LIFETIME_SECONDS), _int_between(60, 86400),
            "Longest lifetime a JWT may declare (`exp` - `iat`): Epic's tokens live 900 s, the CDS Hooks "
            "Sandbox's 300 s. A captured token is usable only this long; bounds the `jti` replay record."),
    Setting("CDS_JWKS_CACHE_SECONDS", "3600", _int_between(60, 86400),
            "How long a fetched JWK Set is used before it is fetched again (sooner for an unknown `kid`)."),
    Setting("CDS_JWKS_FETCH_TIMEOUT_SECONDS", "2.0", _positive_float(30.0),
            "Time limit of one attempt to fetch a client's JWK Set, connection and answer included."),
    Setting("CDS_JWKS_CA_FILE", "", _optional_path,
            "PEM file of the certificate authorities trusted for JWK Set URLs (e.g. a hospital's internal CA). "
            "Unset: the CAs of the Python `certifi` bundle."),
    Setting("REDIS_URL", "", _redis_url,
            "Redis for the shared `jti` replay record (all workers and replicas); unset: the record is kept in "
            "the card-log database, shared as well.",
            secret=True),
    Setting("CDS_FHIR_DEADLINE_SECONDS", "2.0", _positive_float(30.0),
            "Overall deadline for fetching missing prefetch data from the EHR's FHIR server."),
    Setting("CDS_FHIR_CONNECT_TIMEOUT_SECONDS", "1.0", _positive_float(30.0),
            "TCP connect timeout for each FHIR request (also capped by the deadline)."),
    Setting("CDS_FHIR_MAX_PAGES", "10", _int_between(1, 100),
            "Most Bundle pages followed per prefetch key (`next` links)."),
    Setting("CDS_FHIR_MAX_RESPONSE_BYTES", str(10 * 1024 * 1024), _int_between(1024, 1024 ** 3),
            "Largest FHIR response body read; a larger one fails that key (412)."),
    Setting("CDS_OPEN_FHIR_SERVERS", ",".join(SANDBOX_OPEN_FHIR_SERVERS), _base_urls,
            "FHIR base URLs the service may query without `fhirAuthorization` (open test servers) on calls "
            "not signed by a trusted client (development mode); trusted clients list their own."),
    Setting("CDS_MAX_BODY_BYTES", str(5 * 1024 * 1024), _int_between(1024, 1024 ** 3),
            "Largest accepted request body; larger gets 413."),
    Setting("CDS_LOG_LEVEL", "INFO", _upper_choice("DEBUG", "INFO", "WARNING", "ERROR"),
            "Log level of the service's JSON log lines."),
    Setting("CDS_WORKERS", "2", _int_between(1, 64), "gunicorn worker processes."),
    Setting("CDS_THREADS", "4", _int_between(1, 256), "Threads per gunicorn worker."),
    Setting("CDS_HOST", "127.0.0.1", _host,
            "Address `serve` listens on (`--host` overrides); the container image sets `0.0.0.0`."),
    Setting("CDS_PORT", "8080", _int_between(1, 65535), "Port `serve` listens on (`--port` overrides)."),
    Setting("CDS_RUNTIME_DIR", "", _optional_absolute_path,
            "The one directory the server writes to (the container's volume): gunicorn worker heartbeats, "
            "Prometheus multiprocess files, temporary files. Unset: a new directory under the system "
            "temporary directory."),
    Setting("CDS_DATA_DIR", "", _data_directory,
            "Durable data directory (absolute): the embedded SQLite card log and feedback store (created and "
            "migrated on first start) and, in development, the generated patient-key secret. Unset: "
            "`$XDG_DATA_HOME/fasciculation-cds`, else `~/.local/share/fasciculation-cds`, whatever the current "
            "directory. The image sets `/var/lib/fasciculation-cds`, its volume."),
    Setting("DATABASE_URL", "", _database_url,
            "Card log and feedback database, e.g. `postgresql://user@db/cds` (psycopg) for several replicas. "
            "Unset: SQLite in `CDS_DATA_DIR`. Apply migrations with `fasciculation-cds db upgrade`.",
            secret=True),
    Setting("CDS_PATIENT_KEY_SECRET", "", _optional_secret(32),
            "Secret for the pseudonymous patient key (HMAC-SHA256 of the calling client, its FHIR base and the "
            "patient id) in the card log; the same on every replica. Required in production; development "
            "generates one in `CDS_DATA_DIR`.",
            secret=True),
    Setting("CDS_ADMIN_TOKEN", "", _optional_secret(32),
            "Bearer token (or Basic password) for `GET /analytics` and `/analytics.json`. In production "
            "analytics is refused until it is set; in development the pages are open without it.",
            secret=True),
    Setting("CDS_REASSURANCE_WINDOW_DAYS", "90", _int_between(1, 365),
            "A reassurance card accepted for this patient within this many days makes the next one a short "
            "reminder instead of repeating it (health anxiety: avoid repeated reassurance)."),
)


@dataclass(frozen=True)
class Settings:
    locale: str
    cors_origins: tuple[str, ...]
    fhir_deadline_seconds: float
    fhir_connect_timeout_seconds: float
    fhir_max_pages: int
    fhir_max_response_bytes: int
    open_fhir_servers: tuple[str, ...]
    max_body_bytes: int
    log_level: str
    workers: int
    threads: int
    host: str
    port: int
    runtime_dir: str | None
    mode: str
    public_base_url: str | None
    trusted_clients_file: str | None
    insecure_allow_sandbox_in_production: bool
    jwt_clock_skew_seconds: int
    jwt_max_lifetime_seconds: int
    jwks_cache_seconds: int
    jwks_fetch_timeout_seconds: float
    jwks_ca_file: str | None
    redis_url: str | None = field(repr=False)
    data_dir: str
    database_url: str | None = field(repr=False)
    patient_key_secret: str | None = field(repr=False)
    admin_token: str | None = field(repr=False)
    reassurance_window_days: int

    def __post_init__(self) -> None:
        problems = self._production_problems()
        if problems:
            raise ConfigError(*problems)

    def _production_problems(self) -> list[str]:
        """Production must not start in a state where it would trust the Host header or nobody."""
        if self.mode != "production":
            return []
        problems = []
        if not self.trusted_clients_file:
            problems.append("CDS_TRUSTED_CLIENTS_FILE: required when CDS_MODE=production "
                            "(production serves only trusted clients)")
        if not self.public_base_url:
            problems.append("CDS_PUBLIC_BASE_URL: required when CDS_MODE=production "
                            "(the URL EHRs call, checked against the JWT aud)")
        elif not self.public_base_url.startswith("https://") and not _is_loopback_url(self.public_base_url):
            problems.append(f"CDS_PUBLIC_BASE_URL={self.public_base_url!r}: must be https when CDS_MODE=production "
                            "(http only on a loopback host, for a local stack)")
        if not self.patient_key_secret:
            problems.append("CDS_PATIENT_KEY_SECRET: required when CDS_MODE=production (the card log's "
                            "pseudonymous patient key; without it repeated reassurance goes unrecognised)")
        problems.extend(self.weak_secrets())
        return problems

    def weak_secrets(self) -> list[str]:
        """Secret settings holding a published placeholder or a guessable value (refused in production)."""
        problems = []
        for setting in SETTINGS:
            value = getattr(self, _field_name(setting.env)) if setting.secret else None
            if not value:
                continue
            url = setting.env in ("REDIS_URL", "DATABASE_URL")
            weakness = url_password_weakness(value) if url else secret_weakness(value)
            if weakness:
                problems.append(f"{setting.env}=<hidden>: {weakness} (refused when CDS_MODE=production)")
        return problems

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[str] = []
        for setting in SETTINGS:
            raw = environ.get(setting.env, setting.default)
            try:
                values[_field_name(setting.env)] = setting.parse(raw)
            except ValueError as error:
                shown = "<hidden>" if setting.secret else repr(raw)
                problems.append(f"{setting.env}={shown}: {error}")
                values[_field_name(setting.env)] = setting.parse(setting.default)  # to check the others
        if not problems:
            return cls(**values)
        # Every problem at once: the production requirements too, but none twice for one variable.
        try:
            cls(**values)
        except ConfigError as error:
            failed = {_variable(problem) for problem in problems}
            problems += [problem for problem in error.problems if _variable(problem) not in failed]
        raise ConfigError(*problems)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _variable(problem: str) -> str:
    """The variable a problem names: every message starts with it."""
    return re.match(r"[A-Z_]+", problem).group(0)


def _field_name(env: str) -> str:
    return env.removeprefix("CDS_").lower()


def settings_table_markdown() -> str:
    """The README's configuration table, generated so docs cannot drift from code."""
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for setting in SETTINGS:
        default = f"`{setting.default.replace(',', ', ')}`" if setting.default else "unset"
        lines.append(f"| `{setting.env}` | {default} | {setting.doc} |")
    return "\n".join(lines)


if __name__ == "__main__":  # `python -m service.config` prints the README's configuration table
    print(settings_table_markdown())
