"""Golden card text (issue 18): every card's full text, for every fixture, equals its reviewed file.

fixtures/expected/cards/<run>.yaml holds what the EHR receives for a fixture request (summary, detail,
indicator, source, suggestions with their actions and draft orders, selectionBehavior, overrideReasons,
links), every field except the uuids; fixtures/golden.py says which runs there are (each request in its
own locale and the other one, some in the CDS Hooks 1.0 shapes). A mismatch fails with the unified diff
of expected vs actual. The test never writes a golden: `python -m fixtures.golden` proposes them, a
person reviews the diff (fixtures/README.md, "Golden card text").
"""
from __future__ import annotations

import pytest

from fixtures import golden

RUNS = golden.plan()


@pytest.fixture(scope="module")
def runner():
    runner = golden.Runner()
    yield runner
    runner.close()


@pytest.mark.parametrize("run", RUNS, ids=lambda run: run.name)
def test_cards_say_exactly_what_the_reviewed_golden_says(run, runner):
    assert run.path.is_file(), (f"{run.path.relative_to(golden.ROOT)} is missing: run `python -m fixtures.golden "
                                f"{run.name}`, review build/golden-proposed/{run.name}.yaml, and commit it")
    cards = runner.cards(run)
    message = golden.mismatch(run, cards)
    if message:
        pytest.fail(message, pytrace=False)
    assert golden.load_cards(run.path.read_text(encoding="utf-8")) == cards  # nothing lost in the YAML


def test_every_golden_file_belongs_to_a_run():
    planned = {run.path for run in RUNS}
    orphans = sorted(path.name for path in golden.GOLDEN_DIR.glob("*") if path not in planned)
    assert not orphans, f"golden files no request runs (delete them, or restore their request): {orphans}"


def test_every_request_is_golden_tested_in_both_locales():
    requests = {path for requests_dir, _, _ in golden.CORPORA for path in requests_dir.glob("*.json")}
    assert requests and {run.request for run in RUNS} == requests
    for request in requests:
        assert sorted(run.locale for run in RUNS if run.request == request and run.shape is None) == ["UK", "US"]
    assert {run.shape for run in RUNS} == {None, *golden.SHAPES}


def test_the_golden_files_show_the_detail_as_a_markdown_block_a_reviewer_can_read():
    for run in RUNS:
        text = run.path.read_text(encoding="utf-8")
        for card in golden.load_cards(text):
            if "\n" in card["detail"]:
                assert "  detail: |-\n    " in text or "  detail: |\n    " in text, run.name
        assert '\\n' not in text, f"{run.name}: an escaped newline; multi-line text must be a YAML block"


def test_a_changed_word_fails_with_a_readable_diff():
    run = next(run for run in RUNS if run.name == "13-night-cramps-quinine")
    expected = run.path.read_text(encoding="utf-8")
    cards = golden.load_cards(expected)
    cards[0]["detail"] = cards[0]["detail"].replace("boxed warning", "warning", 1)
    diff = golden.unified_diff(expected, golden.render(run, cards), run.name)
    removed = [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert len(removed) == len(added) == 1 and "boxed warning" in removed[0] and "boxed warning" not in added[0]
    assert diff.startswith("--- expected fixtures/expected/cards/13-night-cramps-quinine.yaml\n+++ actual")


def test_the_command_proposes_beside_the_goldens_and_check_fails_on_a_difference(tmp_path, monkeypatch, capsys):
    """`python -m fixtures.golden` writes proposals elsewhere and never touches a committed golden;
    `--check` exits 1 and prints the diff; `--update` is the only way to rewrite one."""
    run = next(run for run in RUNS if run.name == "04-no-labs")
    committed = tmp_path / "cards"
    committed.mkdir()
    reviewed = run.path.read_text(encoding="utf-8")
    stale = reviewed.replace("Order TSH", "Order thyroid tests")
    (committed / run.path.name).write_text(stale, encoding="utf-8")
    monkeypatch.setattr(golden, "GOLDEN_DIR", committed)
    assert golden.main(["--check", "04-no-labs"]) == 1
    out = capsys.readouterr().out
    assert "-  - label: Order thyroid tests" in out and "+  - label: Order TSH" in out
    proposed = tmp_path / "proposed"
    assert golden.main(["--out", str(proposed), "--quiet", "04-no-labs"]) == 0
    assert (committed / run.path.name).read_text(encoding="utf-8") == stale
    assert (proposed / run.path.name).read_text(encoding="utf-8") == reviewed
    assert golden.main(["--update", "--quiet", "04-no-labs"]) == 0
    assert (committed / run.path.name).read_text(encoding="utf-8") == reviewed
