"""Every CDS service this deployment offers; discovery lists them in this order."""
from hooks.fasciculation_review import SERVICE as FASCICULATION_CRAMP_REVIEW

ALL_SERVICES = (FASCICULATION_CRAMP_REVIEW,)
