"""The prescribing check for `order-sign`: the last look at the orders before they are signed."""
from __future__ import annotations

from hooks.contexts import OrderSignContextSchema
from hooks.declaration import CdsService, HookCall, HookResult
from hooks.prescribing import PREFETCH, USAGE_REQUIREMENTS, check_orders


def check_before_signing(call: HookCall) -> HookResult:
    return check_orders(call, selections=None)  # every draft order is about to be signed


SERVICE = CdsService(
    id="twitch-cramp-prescribing-sign",
    hook="order-sign",
    title="Twitch and cramp prescribing check",
    description=(
        "Before orders are signed: the same checks as at selection (quinine for cramp, cyclobenzaprine, "
        "gabapentin or carbamazepine before the work-up, carbamazepine in pregnancy, medicines that "
        "provoke cramp or twitching), over every draft order. Most prescriptions get no card."
    ),
    handler=check_before_signing,
    prefetch=PREFETCH,
    usage_requirements=USAGE_REQUIREMENTS,
    context_schema=OrderSignContextSchema,
)
