"""The card log and the feedback table (SQLAlchemy 2.x declarative models).

Nothing here names a patient: `patient_key` is a keyed hash (see `patient_key.py`), and the
only free text is the clinician's override comment, which the analytics never show.
Changing a model means a new Alembic revision in `migrations/versions/`.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, CheckConstraint, DateTime, Index, Integer, MetaData, String,
                        Text, UniqueConstraint)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

OUTCOMES = ("accepted", "overridden")

# Constraint names fixed by convention, so migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime: `timestamptz` on PostgreSQL, naive UTC text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(DateTime(timezone=dialect.name != "sqlite"))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("store datetimes must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# BIGINT on PostgreSQL; SQLite autoincrements only an INTEGER primary key.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IssuedCard(Base):
    """One card the service returned: written on the request path, before the response leaves."""

    __tablename__ = "issued_cards"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    card_uuid: Mapped[str] = mapped_column(String(128), unique=True)
    service_id: Mapped[str] = mapped_column(String(64))
    topic_code: Mapped[str | None] = mapped_column(String(64))
    topic_display: Mapped[str | None] = mapped_column(String(200))
    knowledge_version: Mapped[str | None] = mapped_column(String(32))
    hook_instance: Mapped[str] = mapped_column(String(128))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    patient_key: Mapped[str | None] = mapped_column(String(64))
    # The uuids of the card's suggestions (null: logged before revision 0002, not known).
    suggestion_ids: Mapped[list[str] | None] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_issued_cards_patient", "patient_key", "service_id"),
        Index("ix_issued_cards_issued_at", "issued_at"),
    )


class CardFeedback(Base):
    """One CDS Hooks feedback entry; (card, outcome, outcomeTimestamp) is stored once."""

    __tablename__ = "card_feedback"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    card_uuid: Mapped[str] = mapped_column(String(128))
    service_id: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    outcome_at: Mapped[datetime] = mapped_column(UtcDateTime())
    accepted_suggestions: Mapped[list[str] | None] = mapped_column(JSON)
    override_reason_system: Mapped[str | None] = mapped_column(String(255))
    override_reason_code: Mapped[str | None] = mapped_column(String(128))
    override_reason_display: Mapped[str | None] = mapped_column(String(255))
    override_comment: Mapped[str | None] = mapped_column(Text)
    # False: this service has no record of issuing the card (stored anyway, counted apart).
    card_known: Mapped[bool] = mapped_column(Boolean)
    # False: an accepted suggestion is not one the card offered (stored anyway, counted apart);
    # null when that cannot be told (unknown card, card logged before revision 0002, an override).
    suggestions_known: Mapped[bool | None] = mapped_column(Boolean)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        UniqueConstraint("card_uuid", "outcome", "outcome_at", name="uq_card_feedback_once"),
        CheckConstraint("outcome IN ('accepted', 'overridden')", name="outcome"),
        Index("ix_card_feedback_outcome_at", "outcome_at"),
    )


class SpentToken(Base):
    """A CDS Hooks JWT already accepted: the replay record when REDIS_URL is unset (service/auth/replay.py).

    Kept until the token has expired (plus the clock skew); a token is refused as expired after that.
    """

    __tablename__ = "spent_tokens"

    token_key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of iss and jti
    expires_at: Mapped[int] = mapped_column(BigInteger)  # epoch seconds

    __table_args__ = (Index("ix_spent_tokens_expires_at", "expires_at"),)
