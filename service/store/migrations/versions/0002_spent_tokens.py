"""Spent JWT jti values, the replay record shared by every worker and replica when REDIS_URL is unset.

Revision ID: 0002_spent_tokens
Revises: 0001
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_spent_tokens"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spent_tokens",
        # sha256 of the issuer and the jti (hex): fixed length, and no claim stored in clear.
        sa.Column("token_key", sa.String(64), nullable=False),
        # When the token expires plus the clock skew (epoch seconds): the row may go after that.
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("token_key", name="pk_spent_tokens"),
    )
    op.create_index("ix_spent_tokens_expires_at", "spent_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_spent_tokens_expires_at", table_name="spent_tokens")
    op.drop_table("spent_tokens")
