"""`fasciculation-cds` command line: evaluate and serve's start-up checks."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from service.cli import main

FIXTURES = Path(__file__).parents[2] / "fixtures"
AS_OF = "2026-11-15T09:00:00Z"


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_evaluate_a_request_prints_readable_cards(capsys):
    code, out, err = run(capsys, "evaluate", str(FIXTURES / "requests/02-twitch-with-weakness.json"), "--as-of", AS_OF)
    assert code == 0, err
    assert "[WARNING]" in out and "topic: neurology-referral" in out
    assert "suggestions (at-most-one):" in out


def test_evaluate_a_bundle_as_json(capsys):
    code, out, _ = run(capsys, "evaluate", str(FIXTURES / "patients/02-twitch-with-weakness.json"),
                       "--as-of", AS_OF, "--json")
    assert code == 0
    topics = {card["source"]["topic"]["code"] for card in json.loads(out)["cards"]}
    assert "neurology-referral" in topics


def test_evaluate_a_patient_without_symptoms_says_no_cards(capsys):
    code, out, _ = run(capsys, "evaluate", str(FIXTURES / "patients/20-negative-no-symptom.json"), "--as-of", AS_OF)
    assert code == 0
    assert out.startswith("No cards")


@pytest.mark.parametrize("content,message", [
    (b"{broken", "not valid JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b'{"resourceType": "Patient"}', "neither a CDS Hooks request"),
    (b'{"resourceType": "Bundle", "type": "collection", "entry": []}', "exactly one Patient"),
    (b'{"hook": "patient-view", "context": {}}', "HTTP 400"),
    (b'{"hook": "encounter-start", "hookInstance": "x", "context": {}}', "no service answers the hook"),
])
def test_evaluate_refuses_invalid_input_with_a_clear_message(tmp_path, capsys, content, message):
    path = tmp_path / "input.json"
    path.write_bytes(content)
    code, out, err = run(capsys, "evaluate", str(path))
    assert code == 2
    assert message in err and err.startswith("fasciculation-cds: ")
    assert out == ""


def test_evaluate_a_missing_file(capsys):
    code, _, err = run(capsys, "evaluate", "/nonexistent/request.json")
    assert code == 2 and "No such file" in err


def test_evaluate_a_request_whose_data_cannot_be_fetched_exits_3(tmp_path, capsys):
    request = json.loads((FIXTURES / "requests/02-twitch-with-weakness.json").read_text())
    del request["prefetch"]
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    code, _, err = run(capsys, "evaluate", str(path))
    assert code == 3 and "HTTP 412" in err


def test_serve_stops_on_bad_configuration_with_one_line():
    result = subprocess.run([sys.executable, "-m", "service.cli", "serve"], capture_output=True, text=True,
                            env={"CDS_FHIR_DEADLINE_SECONDS": "never", "PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "fasciculation-cds: CDS_FHIR_DEADLINE_SECONDS='never': could not convert string to float: 'never'"]


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.org"])
def test_serve_refuses_a_network_address_in_development_mode(host):
    result = subprocess.run([sys.executable, "-m", "service.cli", "serve", "--host", host], capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin", "CDS_DATA_DIR": "/tmp/fasc-cli-test"}, timeout=60)
    assert result.returncode == 2
    assert "refusing to listen" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_evaluate_works_with_production_settings_in_the_environment(capsys, monkeypatch):
    monkeypatch.setenv("CDS_MODE", "production")
    code, out, err = run(capsys, "evaluate", str(FIXTURES / "requests/02-twitch-with-weakness.json"), "--as-of", AS_OF)
    assert code == 0, err
