"""The fasciculation / cramp review service for `patient-view`.

The Observation queries are built from the code lists the clinical rules read, so the
prefetch asks the EHR for exactly the results the rules use and nothing more.
"""
from __future__ import annotations

from cards import FINDING_CODES, LAB_LOINC_CODES, ReviewOptions, review
from hooks.declaration import CdsService, HookCall, HookResult

PATIENT = "{{context.patientId}}"
_PAGE = "_count=100"


def _observations_query(codes: list[str]) -> str:
    return f"Observation?patient={PATIENT}&code={','.join(codes)}&_sort=-date&{_PAGE}"


PREFETCH = {
    "patient": f"Patient/{PATIENT}",
    "conditions": f"Condition?patient={PATIENT}&{_PAGE}",
    "observations": _observations_query([f"http://loinc.org|{code}" for code in LAB_LOINC_CODES]),
    "findings": _observations_query(list(FINDING_CODES)),
    # EHRs differ: US Core exposes only MedicationRequest, others keep MedicationStatement.
    "medicationStatements": f"MedicationStatement?patient={PATIENT}&{_PAGE}",
    "medicationRequests": f"MedicationRequest?patient={PATIENT}&{_PAGE}",
    # Orders already on the chart, so the cards never suggest them twice.
    "serviceRequests": f"ServiceRequest?patient={PATIENT}&status=active&{_PAGE}",
}


def review_chart(call: HookCall) -> HookResult:
    result = review(call.resources, patient_id=call.context["patientId"], now=call.now,
                    options=ReviewOptions(locale=call.locale))
    return HookResult(cards=result.cards, topics=result.topics, skipped_resources=result.skipped_resources)


SERVICE = CdsService(
    id="fasciculation-cramp-review",
    hook="patient-view",
    title="Muscle twitch and cramp review",
    description=(
        "For adults with fasciculation, twitching, muscle cramp or myokymia on the chart: flags red "
        "flags for neurology referral, missing or abnormal work-up (U&E/BMP, calcium, thyroid "
        "function, CK), medicines that provoke twitching or cramps, and gives reassurance and "
        "treatment notes when the picture is benign. Patients without such a symptom get no card."
    ),
    handler=review_chart,
    prefetch=PREFETCH,
    usage_requirements=(
        "Read access to Patient, Condition, Observation, MedicationRequest, MedicationStatement and "
        "ServiceRequest for the patient, by prefetch or through fhirServer with fhirAuthorization."
    ),
)
