"""What the two prescribing services (order-select, order-sign) share: their prefetch and their handler.

Each service is declared in its own module (hooks/order_select.py, hooks/order_sign.py); both run the
prescribing rules of the clinical engine (cards.prescribing) over the patient's chart and the draft
orders of the context. The chart is asked for as on patient-view, from the same code lists: the
Patient (age), Conditions (symptoms, pregnancy), the work-up Observations (pregnancy status included),
the symptom findings, the current medicines, and the orders already placed.
"""
from __future__ import annotations

from cards import KNOWLEDGE_VERSION, DataGap, ReviewOptions, medication_references_needed
from cards.prescribing import review_orders
from hooks.declaration import HookCall, HookResult, PrefetchKey
from hooks.fasciculation_review import PREFETCH as CHART_PREFETCH

# The chart review's keys and failure policies, unchanged: the same data, read by the same reader.
PREFETCH: dict[str, PrefetchKey] = dict(CHART_PREFETCH)

USAGE_REQUIREMENTS = (
    "Read access to Patient, Condition, Observation, MedicationRequest, MedicationStatement and "
    "ServiceRequest for the patient, by prefetch or through fhirServer with fhirAuthorization; and to "
    "Medication, for medicines named by reference. The draft orders come in the context (draftOrders)."
)


def check_orders(call: HookCall, *, selections: list[str] | None) -> HookResult:
    resources = call.resources
    needed = medication_references_needed(resources)
    if needed:
        resources = [*resources, *call.fetch_references(needed).resources]
    gaps = [DataGap(domain, gap.kind, gap.reason) for gap in call.gaps for domain in gap.covers]
    result = review_orders(resources, call.context.get("draftOrders"), patient_id=call.context["patientId"],
                           now=call.now, selections=selections, options=ReviewOptions(locale=call.locale), gaps=gaps)
    # Cards stand on what was read (each says what it read, and what it could not); and when no draft is one
    # the rules look at, the chart was not needed at all. Otherwise a required key missing is a 412.
    return HookResult(cards=result.cards, topics=result.topics, rules=result.rules,
                      skipped_resources=result.skipped_resources, knowledge_version=KNOWLEDGE_VERSION,
                      safe_with_missing_data=bool(result.cards) or not result.relevant)
