"""Card log and feedback.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Column types frozen here rather than imported from models.py: later model changes must not
# rewrite history. (On SQLite the timestamps are naive UTC text; models.UtcDateTime reads them.)
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "issued_cards",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("card_uuid", sa.String(128), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("topic_code", sa.String(64), nullable=True),
        sa.Column("topic_display", sa.String(200), nullable=True),
        sa.Column("knowledge_version", sa.String(32), nullable=True),
        sa.Column("hook_instance", sa.String(128), nullable=False),
        sa.Column("issued_at", Timestamp, nullable=False),
        sa.Column("patient_key", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_issued_cards"),
        sa.UniqueConstraint("card_uuid", name="uq_issued_cards_card_uuid"),
    )
    op.create_index("ix_issued_cards_patient", "issued_cards", ["patient_key", "service_id"])
    op.create_index("ix_issued_cards_issued_at", "issued_cards", ["issued_at"])

    op.create_table(
        "card_feedback",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("card_uuid", sa.String(128), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("outcome_at", Timestamp, nullable=False),
        sa.Column("accepted_suggestions", sa.JSON(), nullable=True),
        sa.Column("override_reason_system", sa.String(255), nullable=True),
        sa.Column("override_reason_code", sa.String(128), nullable=True),
        sa.Column("override_reason_display", sa.String(255), nullable=True),
        sa.Column("override_comment", sa.Text(), nullable=True),
        sa.Column("card_known", sa.Boolean(), nullable=False),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_card_feedback"),
        sa.UniqueConstraint("card_uuid", "outcome", "outcome_at", name="uq_card_feedback_once"),
        sa.CheckConstraint("outcome IN ('accepted', 'overridden')", name="ck_card_feedback_outcome"),
    )
    op.create_index("ix_card_feedback_outcome_at", "card_feedback", ["outcome_at"])


def downgrade() -> None:
    op.drop_index("ix_card_feedback_outcome_at", table_name="card_feedback")
    op.drop_table("card_feedback")
    op.drop_index("ix_issued_cards_issued_at", table_name="issued_cards")
    op.drop_index("ix_issued_cards_patient", table_name="issued_cards")
    op.drop_table("issued_cards")
