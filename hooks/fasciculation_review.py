"""The fasciculation / cramp review service for `patient-view`.

The Observation queries are built from the code lists the clinical rules read, so the
prefetch asks the EHR for exactly the results the rules use and nothing more.
"""
from __future__ import annotations

from datetime import date, timedelta

from cards import FINDING_CODES, KNOWLEDGE_VERSION, LAB_LOINC_CODES, ReviewOptions, review
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


# The reassurance card's source.topic code (cards/knowledge/texts.yaml).
REASSURANCE_TOPIC = "reassurance"


def review_chart(call: HookCall) -> HookResult:
    # The history is read (from the store) only when a reassurance card is being written.
    options = ReviewOptions(locale=call.locale, reassurance_lookup=lambda: reassurance_given_on(call))
    result = review(call.resources, patient_id=call.context["patientId"], now=call.now, options=options)
    return HookResult(cards=result.cards, topics=result.topics, skipped_resources=result.skipped_resources,
                      knowledge_version=KNOWLEDGE_VERSION)


def reassurance_given_on(call: HookCall) -> date | None:
    """The latest day a clinician accepted this patient's reassurance card within the window, if any.

    The seeds warn against repeated reassurance in health anxiety: when it was given recently, the
    cards say so in a short reminder instead of repeating it in full.
    """
    today = call.now.date()
    earliest = today - timedelta(days=call.reassurance_window_days)
    days = [outcome.outcome_date for outcome in call.card_history
            if outcome.topic == REASSURANCE_TOPIC and outcome.outcome == "accepted"
            and earliest <= outcome.outcome_date <= today]
    return max(days, default=None)


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
