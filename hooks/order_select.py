"""The prescribing advice service for `order-select`: while the clinician picks a medicine."""
from __future__ import annotations

from hooks.contexts import OrderSelectContextSchema
from hooks.declaration import CdsService, HookCall, HookResult
from hooks.prescribing import PREFETCH, USAGE_REQUIREMENTS, check_orders


def advise_selection(call: HookCall) -> HookResult:
    # Only the orders just selected are checked: the others of the draft were checked when selected.
    return check_orders(call, selections=list(call.context["selections"]))


SERVICE = CdsService(
    id="twitch-cramp-prescribing-select",
    hook="order-select",
    title="Twitch and cramp prescribing advice",
    description=(
        "While a medicine is selected: warns on quinine for cramp, cyclobenzaprine for fasciculation or "
        "beyond 2-3 weeks, gabapentin or carbamazepine before secondary causes are ruled out (with the "
        "missing tests), carbamazepine in pregnancy, and diuretics, stimulants, high-dose corticosteroids "
        "or beta-2 agonists started in a patient with cramp, twitching or low potassium or magnesium. "
        "Most prescriptions get no card."
    ),
    handler=advise_selection,
    prefetch=PREFETCH,
    usage_requirements=USAGE_REQUIREMENTS,
    context_schema=OrderSelectContextSchema,
)
