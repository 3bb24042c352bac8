"""Rules the suite itself keeps (issue 18): no skip survives CI, and every test has a time limit."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SKIPPING = '''
import pytest

pytest.importorskip("a_module_that_is_not_installed_anywhere") if {module_level} else None


def test_calls_skip():
    pytest.skip("no database here")


@pytest.mark.skip(reason="marked")
def test_marked_skip():
    pass


@pytest.mark.skipif(True, reason="condition")
def test_marked_skipif():
    pass


@pytest.mark.parametrize("value", [])
def test_empty_parameter_set(value):
    pass


@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_failure():
    assert False


def test_passes():
    pass
'''


@pytest.mark.parametrize("ci, outcomes", [
    # skip marks and an empty parameter set skip in setup: a failed setup is counted as an error
    ("true", {"failed": 1, "errors": 3, "passed": 1, "xfailed": 1}),
    (None, {"skipped": 4, "passed": 1, "xfailed": 1}),
])
def test_under_ci_every_skip_is_a_failure(pytester, monkeypatch, ci, outcomes):
    if ci:
        monkeypatch.setenv("CI", ci)
    else:
        monkeypatch.delenv("CI", raising=False)
    pytester.makepyfile(test_skipping=SKIPPING.format(module_level=False))
    result = pytester.runpytest_inprocess("-p", "tests.ci_no_skip", "-p", "no:cacheprovider")
    result.assert_outcomes(**outcomes)
    if ci:
        result.stdout.fnmatch_lines(["*skipped in call while CI is set, which no test may do*no database here*"])
        result.stdout.fnmatch_lines(["*skipped in setup while CI is set, which no test may do*marked*"])


def test_under_ci_a_module_level_skip_is_a_failure(pytester, monkeypatch):
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(test_skipping=SKIPPING.format(module_level=True))
    result = pytester.runpytest_inprocess("-p", "tests.ci_no_skip", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*skipped at collection while CI is set*a_module_that_is_not_installed*"])


def test_the_suite_loads_the_ci_rule_and_a_per_test_timeout(request):
    assert request.config.pluginmanager.hasplugin("tests.ci_no_skip")
    assert request.config.pluginmanager.hasplugin("timeout")  # pytest-timeout, requirements-test.in
    assert int(request.config.getini("timeout")) > 0


def test_every_skip_in_the_suite_fails_under_ci_by_itself():
    """Belt and braces: each place that skips also fails under CI on its own (the plugin is the second line)."""
    unguarded = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if "node_modules" in path.parts or path.name in ("ci_no_skip.py", "test_suite_rules.py"):
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if re.search(r"pytest\.skip\(|pytest\.importorskip\(|mark\.skip(if)?\b", line) and \
                    "pytest.raises(pytest.skip" not in line:
                before = "\n".join(lines[max(0, number - 6):number])
                if not re.search(r"os\.environ\.get\(\"CI\"\)|pytest\.fail\(", before):
                    unguarded.append(f"{path.relative_to(ROOT)}:{number + 1}: {line.strip()}")
    assert not unguarded, "\n".join(unguarded)
