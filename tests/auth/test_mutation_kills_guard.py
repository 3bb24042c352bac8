"""Tests written for the mutant of service/auth/guard.py still open after the sampled mutmut run (docs/mutation.md,
"Survivors not yet killed"); checked by applying the mutant by hand."""
from __future__ import annotations

import codecs
import json
import logging

from tests.auth.support import SERVICE_PATH, client_entry, new_key, production_app
from tests.conftest import patient_view_request

KEY = new_key("ES384")


def test_a_refused_call_whose_body_starts_with_a_byte_order_mark_is_logged_with_its_hook_instance(tmp_path, caplog):
    """guard._hook_instance: the UTF-8 byte-order mark before the JSON is dropped, so the refusal is correlated
    with the call (kills removesuffix for removeprefix, which failed to parse the body and logged None)."""
    app = production_app(tmp_path, client_entry(KEY))
    body = patient_view_request()
    caplog.set_level(logging.INFO)
    response = app.test_client().post(SERVICE_PATH, data=codecs.BOM_UTF8 + json.dumps(body).encode(),
                                      content_type="application/json")
    assert response.status_code == 401
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "service_call"]
    assert (record.auth, record.hookInstance) == ("refused", body["hookInstance"])
