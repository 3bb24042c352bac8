"""Whose patient a service call is about: the authenticated client and the FHIR base it registered.

A patient id means something only within one FHIR server, and each FHIR server belongs to one health
system. So what a call may do with a patient's card history is decided by who signed the call, never
by what its body claims:

- A signed call may name as `fhirServer` only a base registered for its client (docs/security.md).
  Any other is refused with 403 before prefetch is looked at, whether or not something would have
  to be fetched from it: with full prefetch nothing is fetched, yet the card history would still be
  read and written under that server's name.
- The patient key (service/store/patient_key.py) is derived from the client's `iss` and `tenant`
  and the registered base, or from the client alone when the call names no server, so calls of
  different clients never share a namespace.
- Unsigned calls (development mode only) get a namespace of their own, on the `fhirServer` as sent.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from service.errors import CdsError
from service.store.patient_key import patient_namespace

if TYPE_CHECKING:
    from service.auth import AuthenticatedClient


def registered_fhir_base(caller: AuthenticatedClient | None, call_request: Mapping[str, Any]) -> str | None:
    """The registered base the signed call's fhirServer names (None without one); 403 if unregistered."""
    server = call_request.get("fhirServer")
    if caller is None or not server:
        return None
    grant = caller.client.grant_for(server)
    if grant is None:
        raise CdsError.single(403, _unregistered_reason(caller, server), expression=["fhirServer"])
    return grant.base_url


def patient_namespace_for(caller: AuthenticatedClient | None, call_request: Mapping[str, Any]) -> str:
    if caller is None:
        return patient_namespace(signed=False, fhir_base=call_request.get("fhirServer"))
    return patient_namespace(signed=True, iss=caller.iss, tenant=caller.tenant,
                             fhir_base=registered_fhir_base(caller, call_request))


def _unregistered_reason(caller: AuthenticatedClient, server: str) -> str:
    if urlsplit(server).scheme.lower() == "http" and caller.client.grant_for("https" + server[4:]):
        return "fhirServer must use https: it is registered for this CDS client as an https base."
    return ("fhirServer is not a FHIR server registered for this CDS client; the service acts only for "
            "the FHIR bases listed for the client in its trusted-client file.")
