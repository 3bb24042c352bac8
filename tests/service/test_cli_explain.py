"""`fasciculation-cds evaluate --explain`: why each resource was used, ignored or could not be read."""
import json
from pathlib import Path

from tests.service.test_cli import AS_OF, FIXTURES, run

HERE = Path(__file__).parent


def test_the_report_says_why_a_potassium_did_not_show(capsys):
    code, out, err = run(capsys, "evaluate", "--explain", str(HERE / "explain_request.json"), "--as-of", AS_OF)
    assert code == 0, err
    assert out.startswith("Data-quality report for patient p1 as of 2026-11-15T09:00:00+00:00: 5 resources, "
                          "3 used, 1 ignored, 1 unreadable.")
    unreadable = out.split("UNREADABLE\n", 1)[1].split("\n\nUSED", 1)[0]
    assert "Observation/k1 [observations]: potassium result: unit 'xyz' is not known for this test" in unreadable
    assert "note: effectiveDateTime '2026-11-10T08:30' has no time zone; read as UTC" in unreadable
    assert "R4B validation (advice only): meta.lastUpdated:" in unreadable
    assert "Observation/k0 [observations]: latest readable potassium result" in out
    assert "Condition/c1 [conditions]: fasciculation (icd10cm R25.3)" in out
    assert "Observation/bp [observations]: no code the rules read" in out


def test_the_report_as_json(capsys):
    code, out, _ = run(capsys, "evaluate", "--explain", "--json", str(HERE / "explain_request.json"), "--as-of", AS_OF)
    assert code == 0
    report = json.loads(out)
    by_resource = {entry["resource"]: entry for entry in report["resources"]}
    assert report["patient"] == "p1"
    assert by_resource["Observation/k1"]["disposition"] == "unreadable"
    assert by_resource["Observation/k1"]["prefetchKey"] == "observations"
    assert by_resource["Observation/k0"]["r4bValidation"] == []
    assert by_resource["Patient/p1"]["why"] == ["age and sex"]


def test_a_patient_bundle_of_the_fixtures_reads_cleanly(capsys):
    code, out, _ = run(capsys, "evaluate", "--explain", str(FIXTURES / "patients/06-thiazide-low-k.json"),
                       "--as-of", AS_OF)
    assert code == 0
    assert " 0 unreadable." in out.splitlines()[0]
    assert "hydrochlorothiazide (matched by rxnorm)" in out
    assert "R4B validation" not in out  # the fixtures are valid R4B


def test_explain_refuses_what_it_cannot_read(tmp_path, capsys):
    path = tmp_path / "request.json"
    path.write_text('{"hook": "patient-view", "context": {}}')
    code, _, err = run(capsys, "evaluate", "--explain", str(path))
    assert code == 2 and "no context.patientId" in err
