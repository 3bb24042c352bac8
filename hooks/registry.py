"""Every CDS service this deployment offers; discovery lists them in this order."""
from hooks.fasciculation_review import SERVICE as FASCICULATION_CRAMP_REVIEW
from hooks.order_select import SERVICE as PRESCRIBING_SELECT
from hooks.order_sign import SERVICE as PRESCRIBING_SIGN

ALL_SERVICES = (FASCICULATION_CRAMP_REVIEW, PRESCRIBING_SELECT, PRESCRIBING_SIGN)
