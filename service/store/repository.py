"""Reading and writing the card log and the feedback: every function here is one short transaction.

Writes are exactly-once under any number of concurrent writers, threads or processes: rows carry a
natural key under a unique constraint (the card uuid; card + outcome + outcomeTimestamp) and are
inserted with ON CONFLICT DO NOTHING, so a repeat or a race stores nothing twice and fails nothing.
Each transaction inserts its rows in key order, so two writers with overlapping batches wait for
each other instead of deadlocking; should PostgreSQL still report a deadlock or a serialization
failure, the whole (idempotent) transaction is retried.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (Connection, Engine, Insert, Table, TextClause, and_, bindparam, case, delete, distinct, func,
                        literal_column, select, text)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql.elements import ColumnElement

from service.store.engine import WRITE, DatabaseTarget
from service.store.models import CardFeedback, IssuedCard, SpentToken
from service.store.write_turns import WriteTurns

T = TypeVar("T")


def _insert_ignoring_repeats(table: Table, columns: Sequence[str]) -> TextClause:
    """INSERT ... ON CONFLICT DO NOTHING, spelt alike by SQLite and PostgreSQL, with typed parameters.

    On the request path, so written as text: SQLAlchemy 2.0 gives the dialects' own insert() constructs
    (which carry on_conflict_do_nothing) no cache key and compiles them again on every execution, which
    cost a card-log write ~0.3 ms of CPU; a TextClause is compiled once. Only a unique constraint is
    ignored (unlike SQLite's INSERT OR IGNORE), so any other violation still fails the write."""
    return text(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)}) "
                "ON CONFLICT DO NOTHING").bindparams(*(bindparam(c, type_=table.c[c].type) for c in columns))


_ISSUED_CARD_COLUMNS = ("card_uuid", "service_id", "topic_code", "topic_display", "knowledge_version",
                        "hook_instance", "issued_at", "patient_key", "suggestion_ids")
_INSERT_ISSUED_CARDS = _insert_ignoring_repeats(IssuedCard.__table__, _ISSUED_CARD_COLUMNS)


@dataclass(frozen=True)
class IssuedCardRow:
    card_uuid: str
    service_id: str
    topic_code: str | None
    topic_display: str | None
    knowledge_version: str | None
    hook_instance: str
    issued_at: datetime
    patient_key: str | None
    suggestion_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeedbackRow:
    card_uuid: str
    outcome: str  # accepted | overridden
    outcome_at: datetime
    accepted_suggestions: tuple[str, ...] | None = None
    override_reason_system: str | None = None
    override_reason_code: str | None = None
    override_reason_display: str | None = None
    override_comment: str | None = None


@dataclass(frozen=True)
class FeedbackReceipt:
    received: int
    stored: int  # new rows; received - stored were repeats of rows already stored
    unknown_cards: int  # of the stored rows, those for a card this service has no record of issuing
    unknown_suggestions: int = 0  # of the stored rows, those accepting a suggestion the card did not offer


@dataclass(frozen=True)
class PastOutcome:
    topic_code: str | None
    outcome: str
    outcome_at: datetime


class Store:
    def __init__(self, engine: Engine, target: DatabaseTarget):
        self.engine = engine
        self.target = target
        self._write_turns = WriteTurns(target.sqlite_file)
        self._issued_card_binds: dict[str, Any] | None = None

    # -- writes ---------------------------------------------------------------------------------

    def record_issued_cards(self, rows: Sequence[IssuedCardRow]) -> None:
        if not rows:
            return
        values = [{column: getattr(row, column) for column in _ISSUED_CARD_COLUMNS}
                  | {"suggestion_ids": list(row.suggestion_ids)}  # a JSON array
                  for row in sorted(rows, key=lambda row: row.card_uuid)]

        if self.target.is_sqlite:  # every call with cards: the driver's own execute (see _write_sqlite)
            self._write_sqlite(_INSERT_ISSUED_CARDS.text, self._bound_issued_cards(values), many=True)
            return

        def write() -> None:
            with self._write() as connection:
                connection.execute(_INSERT_ISSUED_CARDS, values)
        _retrying(write)

    def _bound_issued_cards(self, values: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows as SQLAlchemy binds them (each column's type's own bind processor: naive UTC text for
        the time, a JSON array), so a row is stored the same whichever way it was written."""
        if self._issued_card_binds is None:
            dialect, table = self.engine.dialect, IssuedCard.__table__
            self._issued_card_binds = {column: table.c[column].type.dialect_impl(dialect).bind_processor(dialect)
                                       for column in _ISSUED_CARD_COLUMNS}
        binds = self._issued_card_binds
        try:
            return [{column: value if binds[column] is None else binds[column](value)
                     for column, value in row.items()} for row in values]
        except Exception as error:  # as SQLAlchemy raises it: a StoreError, never an unexplained 500
            raise StatementError("bind processing failed", _INSERT_ISSUED_CARDS.text, values, error) from error

    def record_feedback(self, service_id: str, rows: Sequence[FeedbackRow], received_at: datetime) -> FeedbackReceipt:
        """Store a feedback batch in one transaction: all of it, or (on error) none of it."""
        ordered = sorted(rows, key=lambda row: (row.card_uuid, row.outcome, row.outcome_at))

        def write() -> FeedbackReceipt:
            with self._write() as connection:
                return self._insert_feedback(connection, service_id, ordered, received_at)
        return _retrying(write)

    def _insert_feedback(self, connection: Connection, service_id: str, rows: Sequence[FeedbackRow],
                         received_at: datetime) -> FeedbackReceipt:
        stored = unknown = unknown_suggestions = 0
        uuids = sorted({row.card_uuid for row in rows})
        # card uuid -> the uuids of its suggestions (None: logged before they were recorded).
        known = dict(connection.execute(select(IssuedCard.card_uuid, IssuedCard.suggestion_ids).where(
            IssuedCard.card_uuid.in_(uuids), IssuedCard.service_id == service_id)).all())
        # RETURNING says whether the row was new (DO NOTHING returns no row), whatever the driver's rowcount.
        statement = self._insert_once(CardFeedback).returning(CardFeedback.id)
        for row in rows:
            suggestions_known = _suggestions_known(row, known)
            result = connection.execute(statement, {
                "card_uuid": row.card_uuid, "service_id": service_id, "outcome": row.outcome,
                "outcome_at": row.outcome_at,
                "accepted_suggestions": list(row.accepted_suggestions)
                if row.accepted_suggestions is not None else None,
                "override_reason_system": row.override_reason_system,
                "override_reason_code": row.override_reason_code,
                "override_reason_display": row.override_reason_display,
                "override_comment": row.override_comment,
                "card_known": row.card_uuid in known, "suggestions_known": suggestions_known,
                "received_at": received_at,
            })
            if result.first() is not None:
                stored += 1
                unknown += row.card_uuid not in known
                unknown_suggestions += suggestions_known is False
        return FeedbackReceipt(received=len(rows), stored=stored, unknown_cards=unknown,
                               unknown_suggestions=unknown_suggestions)

    # The same statement on SQLite (3.35+) and PostgreSQL, as text: every authenticated call runs it, and
    # SQLAlchemy recompiles its upsert construct on each execution.
    _spend_statement = text(
        "INSERT INTO spent_tokens (token_key, expires_at) VALUES (:token_key, :expires_at) "
        "ON CONFLICT (token_key) DO UPDATE SET expires_at = excluded.expires_at "
        "WHERE spent_tokens.expires_at <= :now RETURNING token_key")

    def spend_token(self, token_key: str, expires_at: int, now: int) -> bool:
        """Record a token as used: True the first time, False while an earlier record is unexpired.

        One statement, atomic on both databases under any number of workers and replicas: insert, or
        on conflict take over only a record whose token has expired. RETURNING gives a row exactly
        when this call recorded it.
        """
        values = {"token_key": token_key, "expires_at": expires_at, "now": now}
        if self.target.is_sqlite:  # every authenticated call: the driver's own execute (see _write_sqlite)
            return self._write_sqlite(self._spend_statement.text, values) is not None

        def write() -> bool:
            with self._write() as connection:
                return connection.execute(self._spend_statement, values).first() is not None
        return _retrying(write)

    def forget_spent_tokens(self, now: int) -> int:
        """Delete the records of tokens expired by `now`; returns how many."""
        def write() -> int:
            with self._write() as connection:
                return connection.execute(delete(SpentToken).where(SpentToken.expires_at <= now)).rowcount
        return _retrying(write)

    # -- reads ----------------------------------------------------------------------------------

    def card_history(self, service_id: str, patient_key: str, since: datetime, limit: int = 200) -> list[PastOutcome]:
        """Outcomes of this service's cards for this patient since `since`, newest first."""
        query = (select(IssuedCard.topic_code, CardFeedback.outcome, CardFeedback.outcome_at)
                 .join(CardFeedback, _feedback_of_card())
                 .where(IssuedCard.patient_key == patient_key, IssuedCard.service_id == service_id,
                        CardFeedback.outcome_at >= since)
                 .order_by(CardFeedback.outcome_at.desc())
                 .limit(limit))
        with self.engine.connect() as connection:
            return [PastOutcome(topic, outcome, at) for topic, outcome, at in connection.execute(query)]

    def outcome_counts(self, since: datetime, until: datetime) -> dict[str, list[tuple[Any, ...]]]:
        """The analytics numbers for cards issued in [since, until), grouped by card kind and UTC day.

        shown:     (service, topic, display, day, cards)
        outcomes:  (service, topic, day, outcome, distinct cards)
        reasons:   (service, topic, kind of reason, system, code, display, distinct cards)
        unknown:   (feedback rows for cards never issued, received for outcomes in the period,)
        unknown_suggestions: (feedback rows accepting a suggestion the card never offered, same period,)
        versions:  (knowledge version,) of the cards in the period
        """
        issued_in_period = and_(IssuedCard.issued_at >= since, IssuedCard.issued_at < until)
        kind = (IssuedCard.service_id, IssuedCard.topic_code)
        with self.engine.connect() as connection:
            day = self._utc_day(connection, IssuedCard.issued_at)
            shown = connection.execute(
                select(*kind, func.max(IssuedCard.topic_display), day, func.count())
                .where(issued_in_period).group_by(*kind, day)).all()
            outcomes = connection.execute(
                select(*kind, day, CardFeedback.outcome, func.count(distinct(IssuedCard.card_uuid)))
                .join(CardFeedback, _feedback_of_card())
                .where(issued_in_period).group_by(*kind, day, CardFeedback.outcome)).all()
            reason_kind = case((CardFeedback.override_reason_code.is_not(None), _sql_text("coded")),
                               (CardFeedback.override_comment.is_not(None), _sql_text("comment")),
                               else_=_sql_text("none"))
            reasons = connection.execute(
                select(*kind, reason_kind, CardFeedback.override_reason_system, CardFeedback.override_reason_code,
                       func.max(CardFeedback.override_reason_display), func.count(distinct(IssuedCard.card_uuid)))
                .join(CardFeedback, _feedback_of_card())
                .where(issued_in_period, CardFeedback.outcome == "overridden")
                .group_by(*kind, reason_kind, CardFeedback.override_reason_system,
                          CardFeedback.override_reason_code)).all()
            unknown = connection.execute(
                select(func.count()).select_from(CardFeedback)
                .where(CardFeedback.card_known.is_(False), CardFeedback.outcome_at >= since,
                       CardFeedback.outcome_at < until)).all()
            unknown_suggestions = connection.execute(
                select(func.count()).select_from(CardFeedback)
                .where(CardFeedback.suggestions_known.is_(False), CardFeedback.outcome_at >= since,
                       CardFeedback.outcome_at < until)).all()
            versions = connection.execute(
                select(distinct(IssuedCard.knowledge_version)).where(issued_in_period)).all()
        return {"shown": shown, "outcomes": outcomes, "reasons": reasons, "unknown": unknown,
                "unknown_suggestions": unknown_suggestions, "versions": versions}

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()
        self._write_turns.close()

    # -- helpers --------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE), committed when the block ends without error.

        Every write has the store's durability (service/store/engine.py): on SQLite, WAL with
        synchronous=NORMAL, so a commit survives any process crash and skips the fsync that only a
        power cut would need; the card log and the spent jti values alike.
        """
        with self._write_turns.turn(), self.engine.connect().execution_options(**WRITE) as connection:
            with connection.begin():
                yield connection

    def _write_sqlite(self, statement: str, values: dict[str, Any] | list[dict[str, Any]], *,
                      many: bool = False) -> tuple[Any, ...] | None:
        """One SQLite statement in a write transaction of its own, on a pooled connection: the same
        connection (PRAGMAs: WAL, synchronous=NORMAL), write turn, BEGIN IMMEDIATE and commit as
        _write(), so the same durability, through the sqlite3 module alone. SQLAlchemy's execution
        (events, contexts, result objects) cost ~0.19 ms of CPU of a 0.24 ms jti write (this way ~0.05 ms),
        and ~0.3 ms of a 4-card card-log write.
        Errors are raised as SQLAlchemy's, as _write()'s are. Returns the statement's first row (`many`:
        the statement once per dict of `values`, in the one transaction, and None)."""
        with self._write_turns.turn():
            pooled = self.engine.raw_connection()
            try:
                cursor = pooled.cursor()
                try:
                    cursor.execute("BEGIN IMMEDIATE")
                    try:
                        if many:
                            cursor.executemany(statement, values)
                            row = None
                        else:
                            row = cursor.execute(statement, values).fetchone()
                        cursor.execute("COMMIT")
                    except BaseException:
                        if pooled.driver_connection.in_transaction:
                            cursor.execute("ROLLBACK")
                        raise
                finally:
                    cursor.close()
            except sqlite3.Error as error:
                raise DBAPIError.instance(statement, values, error, sqlite3.Error) from error
            finally:
                pooled.close()  # back to the pool
        return row

    def _insert_once(self, model: type[IssuedCard] | type[CardFeedback]) -> Insert:
        dialect = sqlite if self.engine.dialect.name == "sqlite" else postgresql
        return dialect.insert(model).on_conflict_do_nothing()

    def _utc_day(self, connection: Connection, column: Any) -> ColumnElement[str]:
        if connection.dialect.name == "sqlite":  # stored as naive UTC text
            return func.substr(column, 1, 10)
        return func.to_char(func.timezone(_sql_text("UTC"), column), _sql_text("YYYY-MM-DD"))


_RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure
_ATTEMPTS = 3


def _retrying(write: Callable[[], T]) -> T:
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return write()
        except DBAPIError as error:
            if attempt == _ATTEMPTS or getattr(error.orig, "sqlstate", None) not in _RETRYABLE_SQLSTATES:
                raise
    raise AssertionError("unreachable")


def _sql_text(constant: str) -> ColumnElement[str]:
    # Inlined, not bound: PostgreSQL matches GROUP BY expressions to SELECT ones only when identical.
    return literal_column(f"'{constant}'")


def _suggestions_known(row: FeedbackRow, known: dict[str, list[str] | None]) -> bool | None:
    """False when an accepted suggestion is not one the card offered; None when that cannot be told."""
    offered = known.get(row.card_uuid)
    if row.accepted_suggestions is None or offered is None:
        return None
    return set(row.accepted_suggestions) <= set(offered)


def _feedback_of_card() -> ColumnElement[bool]:
    return and_(CardFeedback.card_uuid == IssuedCard.card_uuid, CardFeedback.service_id == IssuedCard.service_id)
