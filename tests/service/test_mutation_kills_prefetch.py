"""Tests written for mutants of service/prefetch*.py that survived the suite (docs/mutation.md, "Results")."""
from __future__ import annotations

import pytest

from service.ssrf import LOOPBACK_ALLOWED, PRIVATE_ALLOWED
from service.prefetch import fhir_access
from tests.conftest import make_settings


@pytest.mark.parametrize("request_fields, open_servers, policy", [
    # An allowlisted open server (CDS_OPEN_FHIR_SERVERS) may be on a private network: that is why it is listed.
    ({"fhirServer": "http://10.0.0.5/fhir"}, ("http://10.0.0.5/fhir",), PRIVATE_ALLOWED),
    # Any other unsigned call with a token reaches public servers and this machine only.
    ({"fhirServer": "http://127.0.0.1:8080/fhir", "fhirAuthorization": {"access_token": "t"}}, (), LOOPBACK_ALLOWED),
])
def test_unsigned_calls_get_the_address_policy_of_their_kind(request_fields, open_servers, policy):
    """prefetch._unsigned_call_access: the policy is given, not left to FhirAccess's PUBLIC_ONLY default."""
    access = fhir_access(request_fields, make_settings(open_fhir_servers=open_servers))
    assert access is not None and access.address_policy == policy
