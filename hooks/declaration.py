"""How a CDS service is declared: once, with everything discovery and routing need.

The service layer derives the discovery document, the `POST /cds-services/{id}` route,
the prefetch fallback queries and each key's failure policy from a CdsService; a hook
module only declares one and supplies the handler that turns the gathered FHIR data into
cards. Like HAPI FHIR's `@CdsServicePrefetch`, each prefetch key carries its own policy
(PrefetchKey): the data it covers, whether the cards can do without it, and which other
keys hold the same facts.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, Protocol

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
class PrefetchKey:
    """One prefetch key: its template, and what the service does when it cannot be obtained.

    ``covers``: the data domains its resources inform, in the words of the hook's clinical engine
    (for this project, cards.DOMAINS); a key that could not be obtained, or only partly, reaches the
    handler as a KeyGap naming them. ``required``: without it the answer is 412 unless the handler
    says its cards stand on what was obtained (HookResult.safe_with_missing_data), e.g. a red flag.
    ``alternatives``: keys holding the same facts (MedicationStatement and MedicationRequest): when
    the FHIR server does not support this key's search (HTTP 404/400, an OperationOutcome
    `not-supported`) and an alternative was obtained, nothing is missing.
    """

    template: str
    covers: tuple[str, ...] = ()
    required: bool = True
    alternatives: tuple[str, ...] = ()

    @property
    def resource_type(self) -> str:
        return re.split(r"[/?]", self.template.strip().lstrip("/"), maxsplit=1)[0]


@dataclass(frozen=True)
class KeyGap:
    """Data of one prefetch key that the handler did not get, and why (no patient data in `reason`)."""

    key: str
    covers: tuple[str, ...]
    kind: str  # not_obtained | incomplete
    reason: str  # "the FHIR server answered HTTP 500", "only the first page was sent ..."


@dataclass(frozen=True)
class FetchedReferences:
    resources: list[Mapping[str, Any]] = field(default_factory=list)
    failures: Mapping[str, str] = field(default_factory=dict)  # reference -> why it could not be fetched


class ReferenceFetcher(Protocol):
    def __call__(self, references: Sequence[str]) -> FetchedReferences: ...


def no_reference_fetching(references: Sequence[str]) -> FetchedReferences:
    return FetchedReferences(failures={reference: "the service may not query the FHIR server"
                                       for reference in references})


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
    # What could not be obtained, per prefetch key, in declaration order.
    gaps: Sequence[KeyGap] = ()
    # Fetches `Type/id` references (e.g. the Medication a MedicationRequest names) from the EHR's FHIR
    # server, under the call's access rules and within its overall deadline.
    fetch_references: ReferenceFetcher = field(default=no_reference_fetching, repr=False, compare=False)

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
    rules: tuple[str, ...] = ()  # the rule ids behind the cards, logged with the call (never on a card)
    skipped_resources: int = 0
    knowledge_version: str | None = None  # recorded with each card in the card log
    # The cards are worth answering even though a required prefetch key could not be obtained (they
    # show a red flag or an abnormal result, and say what could not be fetched); otherwise 412.
    safe_with_missing_data: bool = False


@dataclass(frozen=True)
class CdsService:
    id: str
    hook: str
    title: str
    description: str
    handler: Callable[[HookCall], HookResult] = field(repr=False)
    # key -> template, or PrefetchKey (template and failure policy); a bare template is a required key.
    # After construction `prefetch` holds the templates (discovery) and `prefetch_keys` the policies.
    prefetch: Mapping[str, str | PrefetchKey] = field(default_factory=dict)
    usage_requirements: str | None = None
    # The marshmallow schema of the hook's context (hooks/contexts.py); None: the hook library's one
    # for `hook`, when the service layer knows it.
    context_schema: type | None = field(default=None, repr=False, compare=False)
    prefetch_keys: Mapping[str, PrefetchKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _SERVICE_ID.match(self.id):
            raise ValueError(f"service id {self.id!r} must be a URL-safe slug")
        keys = {key: value if isinstance(value, PrefetchKey) else PrefetchKey(value)
                for key, value in self.prefetch.items()}
        object.__setattr__(self, "prefetch_keys", MappingProxyType(keys))
        object.__setattr__(self, "prefetch", MappingProxyType({key: k.template for key, k in keys.items()}))
        for key, policy in keys.items():
            unknown = [other for other in policy.alternatives if other not in keys or other == key]
            if unknown:
                raise ValueError(f"prefetch {key!r}: alternatives {unknown} are not other keys of this service")
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
