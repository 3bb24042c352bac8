"""How a CDS service is declared: once, with everything discovery and routing need.

The service layer derives the discovery document, the `POST /cds-services/{id}` route
and the prefetch fallback queries from a CdsService; a hook module only declares one
and supplies the handler that turns the gathered FHIR data into cards.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

# CDS Hooks 2.0 prefetch tokens: a root-level context field or one of the user tokens.
_TOKEN = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")
_USER_TOKENS = ("userPractitionerId", "userPractitionerRoleId", "userPatientId", "userRelatedPersonId")
_SERVICE_ID = re.compile(r"^[A-Za-z0-9\-._]{1,64}$")


@dataclass(frozen=True)
class CardOutcome:
    """What a clinician did with a card this service showed for the same patient earlier (CDS Hooks feedback)."""

    topic: str | None  # the card's source.topic code
    outcome: str  # "accepted" | "overridden"
    outcome_at: datetime  # the feedback's outcomeTimestamp, UTC

    @property
    def outcome_date(self) -> date:
        return self.outcome_at.date()


@dataclass(frozen=True)
class HookCall:
    """One validated invocation, with its FHIR data gathered (prefetched or fetched)."""

    hook_instance: str
    context: Mapping[str, Any]
    data: Mapping[str, Sequence[Mapping[str, Any]]]  # prefetch key -> FHIR resources
    now: datetime
    locale: str
    # This patient's earlier card outcomes from this service (the last year, newest first); empty
    # when the service has none or the call names no patient. The service hands over a
    # DeferredHistory: the store is read only if the hook looks.
    card_history: Sequence[CardOutcome] = ()
    # Deployment setting (CDS_REASSURANCE_WINDOW_DAYS): how recent an accepted reassurance card must
    # be for the next one to be a short reminder.
    reassurance_window_days: int = 90

    @property
    def resources(self) -> list[Mapping[str, Any]]:
        return [resource for resources in self.data.values() for resource in resources]


class DeferredHistory(Sequence[CardOutcome]):
    """Card outcomes loaded on first use. Most chart openings produce no card that depends on the
    patient's history, so most never pay for the database read; an error loading it surfaces where
    the hook first looks, inside the call."""

    __slots__ = ("_load", "_items")

    def __init__(self, load: Callable[[], Iterable[CardOutcome]]):
        self._load = load
        self._items: tuple[CardOutcome, ...] | None = None

    def _loaded(self) -> tuple[CardOutcome, ...]:
        if self._items is None:
            self._items = tuple(self._load())
        return self._items

    def __getitem__(self, index):  # type: ignore[override]
        return self._loaded()[index]

    def __len__(self) -> int:
        return len(self._loaded())

    def __iter__(self) -> Iterator[CardOutcome]:
        return iter(self._loaded())

    def __repr__(self) -> str:
        return "DeferredHistory(not loaded)" if self._items is None else f"DeferredHistory({self._items!r})"


@dataclass(frozen=True)
class HookResult:
    cards: list[dict[str, Any]]
    topics: tuple[str, ...] = ()
    skipped_resources: int = 0
    knowledge_version: str | None = None  # recorded with each card in the card log


@dataclass(frozen=True)
class CdsService:
    id: str
    hook: str
    title: str
    description: str
    handler: Callable[[HookCall], HookResult] = field(repr=False)
    prefetch: Mapping[str, str] = field(default_factory=dict)
    usage_requirements: str | None = None

    def __post_init__(self) -> None:
        if not _SERVICE_ID.match(self.id):
            raise ValueError(f"service id {self.id!r} must be a URL-safe slug")
        for key, template in self.prefetch.items():
            for token in _TOKEN.findall(template):
                if not _is_valid_token(token):
                    raise ValueError(f"prefetch {key!r}: token {{{{{token}}}}} is not a CDS Hooks 2.0 token")

    def discovery_entry(self) -> dict[str, Any]:
        """The service's entry in `GET /cds-services`; optional fields omitted when unset."""
        entry: dict[str, Any] = {
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "id": self.id,
        }
        if self.prefetch:
            entry["prefetch"] = dict(self.prefetch)
        if self.usage_requirements:
            entry["usageRequirements"] = self.usage_requirements
        return entry


def _is_valid_token(token: str) -> bool:
    if token in _USER_TOKENS:
        return True
    head, _, rest = token.partition(".")
    return head == "context" and bool(rest) and "." not in rest


def render_template(template: str, context: Mapping[str, Any]) -> str | None:
    """Substitute prefetch tokens from the hook context; None when a token has no value.

    User tokens resolve from `context.userId` (e.g. `Practitioner/123` gives
    userPractitionerId = 123), as the spec describes.
    """
    user_type, _, user_id = str(context.get("userId", "")).partition("/")
    unresolved = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal unresolved
        token = match.group(1)
        if token.startswith("context."):
            value = context.get(token.removeprefix("context."))
        else:
            value = user_id if token == f"user{user_type}Id" else None
        if not isinstance(value, str) or not value:
            unresolved = True
            return ""
        return value

    rendered = _TOKEN.sub(substitute, template)
    return None if unresolved else rendered
