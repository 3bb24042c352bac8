"""A known mix of cards and feedback, and the numbers the analytics must show for it."""
from __future__ import annotations

from datetime import UTC, datetime

from tests.store.support import FEEDBACK_PATH, SERVICE_ID, SERVICE_PATH, accepted, fixture_request, overridden

DAY_ONE = datetime(2026, 11, 13, 15, 0, tzinfo=UTC)
DAY_THREE = datetime(2026, 11, 15, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def post_known_mix(client, clock: Clock, post=None) -> dict[str, list[dict]]:
    """Cards on two days and feedback on some of them; returns the cards by topic.

    Day one (13 Nov): 06-thiazide-low-k (abnormal-result, workup-incomplete, medication-review,
    cramp-management) and 01 (reassurance). Day three (15 Nov): 01 twice more (reassurance) and 04
    (workup-incomplete).
    """
    post = post or (lambda path, body: client.post(path, json=body))
    by_topic: dict[str, list[dict]] = {}

    def issue(name: str) -> None:
        response = post(SERVICE_PATH, fixture_request(name))
        assert response.status_code == 200
        for card in response.json()["cards"] if hasattr(response, "ok") else response.get_json()["cards"]:
            by_topic.setdefault(card["source"]["topic"]["code"], []).append(card)

    clock.now = DAY_ONE
    issue("06-thiazide-low-k")
    issue("01-benign-calf-twitch")
    clock.now = DAY_THREE
    issue("01-benign-calf-twitch")
    issue("01-benign-calf-twitch")
    issue("04-no-labs")

    workup, reassurance = by_topic["workup-incomplete"], by_topic["reassurance"]
    feedback = [
        accepted(workup[0]["uuid"], "2026-11-13T15:05:00Z", suggestions=(workup[0]["suggestions"][0]["uuid"],)),
        accepted(workup[1]["uuid"], "2026-11-15T09:02:00Z", suggestions=(workup[1]["suggestions"][0]["uuid"],)),
        accepted(reassurance[0]["uuid"], "2026-11-13T15:06:00Z"),
        overridden(reassurance[1]["uuid"], "2026-11-15T09:03:00Z", code="patient-declines",
                   display="Patient declines"),
        overridden(reassurance[2]["uuid"], "2026-11-15T09:04:00Z", code="patient-declines",
                   display="Patient declines"),
        overridden(by_topic["medication-review"][0]["uuid"], "2026-11-13T15:07:00Z", code="already-addressed",
                   display="Already addressed"),
        overridden(by_topic["cramp-management"][0]["uuid"], "2026-11-13T15:08:00Z", code=None,
                   comment="not relevant today"),
        accepted("00000000-feed-4bac-8000-00000000cafe", "2026-11-15T09:05:00Z"),  # never issued
    ]
    response = post(FEEDBACK_PATH, {"feedback": feedback})
    assert response.status_code == 200
    return by_topic


# Per topic: shown, accepted, overridden, top override reasons; series on 13 and 15 Nov.
EXPECTED = {
    "reassurance": (3, 1, 2, [("Patient declines", 2)]),
    "workup-incomplete": (2, 2, 0, []),
    "abnormal-result": (1, 0, 0, []),
    "medication-review": (1, 0, 1, [("Already addressed", 1)]),
    "cramp-management": (1, 0, 1, [("free-text comment only", 1)]),
}
EXPECTED_SERIES = {
    ("reassurance", "2026-11-13"): (1, 1, 0), ("reassurance", "2026-11-15"): (2, 0, 2),
    ("workup-incomplete", "2026-11-13"): (1, 1, 0), ("workup-incomplete", "2026-11-15"): (1, 1, 0),
    ("medication-review", "2026-11-13"): (1, 0, 1),
}
EXPECTED_TOTALS = (8, 3, 4)
KIND_PREFIX = f"{SERVICE_ID}/"


# A busy month: 13 card kinds (every topic the knowledge names, and one more) on each of 30 days.
BUSY_KINDS = (
    ("reassurance", "Reassurance"), ("workup-incomplete", "Work-up incomplete"), ("abnormal-result", "Abnormal result"),
    ("medication-review", "Medication review"), ("cramp-management", "Cramp management"),
    ("neurology-referral", "Neurology referral"), ("treatment-options", "Treatment options"),
    ("cyclobenzaprine-not-indicated", "Cyclobenzaprine not indicated"), ("quinine-caution", "Quinine caution"),
    ("compression-caution", "Compression caution"), ("health-anxiety", "Health anxiety"),
    ("differential", "Differential diagnosis"), ("reassurance-reminder", "Reassurance reminder"),
)
BUSY_REASONS = (("already-addressed", "Already addressed"), ("patient-declines", "Patient declines"),
                ("not-clinically-relevant", "Not clinically relevant"))


def write_busy_month(store, today: datetime) -> dict[str, tuple[int, int, int]]:
    """Cards and feedback for 30 days written straight to the store; (shown, accepted, overridden) per topic."""
    from datetime import timedelta

    from service.store import FeedbackRow, IssuedCardRow
    totals: dict[str, tuple[int, int, int]] = {}
    cards, feedback = [], []
    for k, (topic, display) in enumerate(BUSY_KINDS):
        shown = accepted = overridden = 0
        for day in range(30):
            issued_at = today - timedelta(days=29 - day, hours=1)
            for n in range((k * 7 + day * 3) % 9 + (12 - k)):
                card = f"{k:02d}{day:02d}{n:02d}00-0000-4000-8000-{k:04d}{day:04d}{n:04d}"
                cards.append(IssuedCardRow(card, SERVICE_ID, topic, display, "test", f"h-{card}", issued_at, None))
                shown += 1
                at = issued_at + timedelta(minutes=5)
                if (n + day) % 3 == 0:
                    feedback.append(FeedbackRow(card, "accepted", at, accepted_suggestions=()))
                    accepted += 1
                elif (n + k) % (2 + k % 4) == 0:
                    system, (code, text) = "urn:test:override", BUSY_REASONS[(n + day + k) % len(BUSY_REASONS)]
                    feedback.append(FeedbackRow(card, "overridden", at, override_reason_system=system,
                                                override_reason_code=code, override_reason_display=text))
                    overridden += 1
        totals[topic] = (shown, accepted, overridden)
    store.record_issued_cards(cards)
    store.record_feedback(SERVICE_ID, feedback, received_at=today)
    return totals
