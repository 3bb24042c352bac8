"""Flag feedback that accepts a suggestion the card never offered.

issued_cards.suggestion_ids: the uuids of the card's suggestions, as issued (null for cards logged
before this revision: their suggestions are unknown, so feedback on them is not judged).
card_feedback.suggestions_known: false when an accepted suggestion is not one of the card's; null
when it cannot be told (an unknown card, a card logged before this revision, an override).

Revision ID: 0004_feedback_flags
Revises: 0003_patient_key_per_client
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_feedback_flags"
down_revision = "0003_patient_key_per_client"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns without a default: a metadata-only change on PostgreSQL, no table rewrite.
    op.add_column("issued_cards", sa.Column("suggestion_ids", sa.JSON(), nullable=True))
    op.add_column("card_feedback", sa.Column("suggestions_known", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("card_feedback") as batch:
        batch.drop_column("suggestions_known")
    with op.batch_alter_table("issued_cards") as batch:
        batch.drop_column("suggestion_ids")
