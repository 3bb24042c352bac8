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
