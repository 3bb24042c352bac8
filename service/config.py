"""Runtime settings, read once from environment variables and validated at start.

Every setting is declared in SETTINGS with its default and parser; the README's
configuration table documents the same list. A bad value raises ConfigError whose
message is one line naming the variable, so `serve` can stop with a clear reason.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A configuration value is invalid; str(error) is a one-line reason."""


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


def _upper_choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().upper()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value
    return parse


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


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


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


SETTINGS: tuple[Setting, ...] = (
    Setting("CDS_LOCALE", "US", _upper_choice("US", "UK"),
            "Card wording and regulatory position: `US` (BMP, FDA) or `UK` (U&E, MHRA)."),
    Setting("CDS_CORS_ORIGINS", "*", _origins,
            "Comma-separated browser origins allowed by CORS, or `*` for any."),
    Setting("CDS_FHIR_DEADLINE_SECONDS", "2.0", _positive_float(30.0),
            "Overall deadline for fetching missing prefetch data from the EHR's FHIR server."),
    Setting("CDS_FHIR_CONNECT_TIMEOUT_SECONDS", "1.0", _positive_float(30.0),
            "TCP connect timeout for each FHIR request (also capped by the deadline)."),
    Setting("CDS_FHIR_MAX_PAGES", "10", _int_between(1, 100),
            "Most Bundle pages followed per prefetch key (`next` links)."),
    Setting("CDS_FHIR_MAX_RESPONSE_BYTES", str(10 * 1024 * 1024), _int_between(1024, 1024 ** 3),
            "Largest FHIR response body read; a larger one fails that key (412)."),
    Setting("CDS_OPEN_FHIR_SERVERS", ",".join(SANDBOX_OPEN_FHIR_SERVERS), _base_urls,
            "FHIR base URLs the service may query without `fhirAuthorization` (open test servers)."),
    Setting("CDS_MAX_BODY_BYTES", str(5 * 1024 * 1024), _int_between(1024, 1024 ** 3),
            "Largest accepted request body; larger gets 413."),
    Setting("CDS_LOG_LEVEL", "INFO", _upper_choice("DEBUG", "INFO", "WARNING", "ERROR"),
            "Log level of the service's JSON log lines."),
    Setting("CDS_WORKERS", "2", _int_between(1, 64), "gunicorn worker processes."),
    Setting("CDS_THREADS", "4", _int_between(1, 256), "Threads per gunicorn worker."),
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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = environ.get(setting.env, setting.default)
            try:
                values[_field_name(setting.env)] = setting.parse(raw)
            except ValueError as error:
                raise ConfigError(f"{setting.env}={raw!r}: {error}") from None
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _field_name(env: str) -> str:
    return env.removeprefix("CDS_").lower()


def settings_table_markdown() -> str:
    """The README's configuration table, generated so docs cannot drift from code."""
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for setting in SETTINGS:
        default = setting.default.replace(",", ", ")
        lines.append(f"| `{setting.env}` | `{default}` | {setting.doc} |")
    return "\n".join(lines)
