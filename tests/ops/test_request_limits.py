"""The body limit holds for chunked bodies too (no Content-Length), not only for declared sizes."""
import io
import json

from service import create_app
from tests.conftest import PROBE_SERVICE, make_settings, patient_view_request
from tests.auth.support import OPEN_APPS

URL = "/cds-services/probe"


def post_chunked(client, body: bytes):
    # What gunicorn hands over for Transfer-Encoding: chunked: no CONTENT_LENGTH, a terminated stream.
    return client.post(URL, input_stream=io.BytesIO(body), content_type="application/json",
                       environ_overrides={"wsgi.input_terminated": True})


def test_a_chunked_body_over_the_limit_is_413_with_an_operation_outcome():
    app = create_app(make_settings(max_body_bytes=2048), services=[PROBE_SERVICE])
    OPEN_APPS.append(app)
    client = app.test_client()
    response = post_chunked(client, json.dumps(patient_view_request(extension={"pad": "x" * 4096})).encode())
    assert response.status_code == 413
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert response.get_json()["issue"][0]["code"] == "too-costly"
    assert post_chunked(client, json.dumps(patient_view_request()).encode()).status_code == 200
