"""One side of the replay race in tests/store/test_spent_tokens.py, run as its own process.

    python -m tests.store.replay_race <settings.json> <tokens.json> <go-file>

Builds the production app on the given database, waits until the go-file exists (so both processes
start together), posts every token once in order and prints the HTTP statuses as a JSON list.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from service import create_app
from tests.conftest import FIXTURE_AS_OF, PROBE_SERVICE, make_settings, patient_view_request


def main(settings_file: str, tokens_file: str, go_file: str) -> None:
    settings = make_settings(**json.loads(Path(settings_file).read_text()))
    app = create_app(settings, services=[PROBE_SERVICE], clock=lambda: FIXTURE_AS_OF)
    client = app.test_client()
    tokens = json.loads(Path(tokens_file).read_text())
    deadline = time.monotonic() + 60
    while not Path(go_file).exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    statuses = [client.post("/cds-services/probe", json=patient_view_request(),
                            headers={"Authorization": f"Bearer {token}"}).status_code for token in tokens]
    print(json.dumps(statuses))


if __name__ == "__main__":
    main(*sys.argv[1:4])
