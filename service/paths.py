"""CDS Hooks URLs as clients actually spell them: a trailing slash, or a doubled one.

An EHR integrator may register the discovery URL as `https://cds.example/cds-services/`; the CDS
Hooks Sandbox then calls `.../cds-services//{id}` (it appends `/{id}`) and signs that URL as the
JWT `aud`. Flask would answer 404 for the first and redirect the second after authentication had
already spent the token's `jti`, so the retried call would be refused as a replay. This WSGI
middleware maps such paths under /cds-services to their canonical form before routing, and keeps
the path as sent, which the JWT guard also accepts as `aud` (service/auth/guard.py).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

PATH_AS_SENT = "fasciculation_cds.path_as_sent"  # WSGI environ key: the path before canonicalisation
_PREFIX = "/cds-services"
_SLASHES = re.compile(r"/{2,}")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def canonical_path(path: str) -> str:
    """`path` with repeated slashes merged and a trailing slash removed, when it is under /cds-services."""
    merged = _SLASHES.sub("/", path)
    if merged != _PREFIX and not merged.startswith(_PREFIX + "/"):
        return path
    return merged.rstrip("/") or "/"


class CanonicalCdsPaths:
    def __init__(self, app: WsgiApp):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        canonical = canonical_path(path)
        if canonical != path:
            environ[PATH_AS_SENT] = path
            environ["PATH_INFO"] = canonical
        return self.app(environ, start_response)
