"""The fasciculation / cramp review service for `patient-view`.

The Observation queries are built from the code lists the clinical rules read, so the
prefetch asks the EHR for exactly the results the rules use and nothing more. Each key
declares the data it covers and what its absence means (hooks.declaration.PrefetchKey).
"""
from __future__ import annotations

from datetime import date, timedelta

from cards import (FINDING_CODES, KNOWLEDGE_VERSION, LAB_LOINC_CODES, DataGap, ReviewOptions,
                   medication_references_needed, review)
from cards.view import CONDITIONS, FINDINGS, LABS, MEDICATIONS, ORDERS, PATIENT
from hooks.contexts import PatientViewContextSchema
from hooks.declaration import CdsService, HookCall, HookResult, PrefetchKey

PATIENT_ID = "{{context.patientId}}"
_PAGE = "_count=100"


def _observations_query(codes: list[str]) -> str:
    return f"Observation?patient={PATIENT_ID}&code={','.join(codes)}&_sort=-date&{_PAGE}"


PREFETCH = {
    "patient": PrefetchKey(f"Patient/{PATIENT_ID}", covers=(PATIENT,)),
    "conditions": PrefetchKey(f"Condition?patient={PATIENT_ID}&{_PAGE}", covers=(CONDITIONS,)),
    "observations": PrefetchKey(_observations_query([f"http://loinc.org|{code}" for code in LAB_LOINC_CODES]),
                                covers=(LABS,)),
    # Exam findings, and the ankle-brachial index (a SNOMED-coded result).
    "findings": PrefetchKey(_observations_query(list(FINDING_CODES)), covers=(FINDINGS, LABS)),
    # EHRs differ: US Core exposes only MedicationRequest, others keep MedicationStatement, and
    # Oracle Health's R4 API has no MedicationStatement at all: either key holds the medicines.
    "medicationStatements": PrefetchKey(f"MedicationStatement?patient={PATIENT_ID}&{_PAGE}", covers=(MEDICATIONS,),
                                        alternatives=("medicationRequests",)),
    "medicationRequests": PrefetchKey(f"MedicationRequest?patient={PATIENT_ID}&{_PAGE}", covers=(MEDICATIONS,),
                                      alternatives=("medicationStatements",)),
    # Orders already on the chart, so the cards never suggest them twice. Without them the cards are
    # still safe (a suggestion may repeat an order, and the data-gap card says so): not required.
    "serviceRequests": PrefetchKey(f"ServiceRequest?patient={PATIENT_ID}&status=active&{_PAGE}", covers=(ORDERS,),
                                   required=False),
}


# The reassurance card's source.topic code (cards/knowledge/texts.yaml).
REASSURANCE_TOPIC = "reassurance"


def review_chart(call: HookCall) -> HookResult:
    # The history is read (from the store) only when a reassurance card is being written.
    options = ReviewOptions(locale=call.locale, reassurance_lookup=lambda: reassurance_given_on(call))
    resources = call.resources
    # Medicines named by a reference to a Medication that is neither contained nor included: fetched
    # through the service (same access rules and deadline); one that cannot be is shown as unreadable.
    needed = medication_references_needed(resources)
    if needed:
        resources = [*resources, *call.fetch_references(needed).resources]
    gaps = [DataGap(domain, gap.kind, gap.reason) for gap in call.gaps for domain in gap.covers]
    result = review(resources, patient_id=call.context["patientId"], now=call.now, options=options, gaps=gaps)
    return HookResult(cards=result.cards, topics=result.topics, rules=result.rules,
                      skipped_resources=result.skipped_resources,
                      knowledge_version=KNOWLEDGE_VERSION, safe_with_missing_data=result.urgent)


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
        "ServiceRequest for the patient, by prefetch or through fhirServer with fhirAuthorization; and "
        "to Medication, for medicines named by reference."
    ),
    context_schema=PatientViewContextSchema,
)
