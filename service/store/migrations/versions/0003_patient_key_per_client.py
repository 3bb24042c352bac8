"""Patient keys scoped to the authenticated client and its registered FHIR base: clear the old ones.

Until now the pseudonymous patient key was derived from the request's `fhirServer` (or the tenant, or
nothing), so one client could reach another's card history (docs/security.md). The new key also covers
the client's `iss` and `tenant` and the registered base (service/store/patient_key.py). An HMAC
cannot be re-keyed without the patient id, which is never stored, so the old keys can match nothing
any more; they are cleared rather than kept as unlinkable pseudonyms. The cards and feedback stay
(analytics count them); what is lost is the link between a patient's earlier cards and the next
chart opening, so the first reassurance after the upgrade is shown in full, not as a reminder.

Revision ID: 0003_patient_key_per_client
Revises: 0002_spent_tokens
Create Date: 2026-12-05
"""
from __future__ import annotations

from alembic import op

revision = "0003_patient_key_per_client"
down_revision = "0002_spent_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE issued_cards SET patient_key = NULL WHERE patient_key IS NOT NULL")


def downgrade() -> None:
    pass  # the cleared keys cannot be brought back, and the older code works without them
