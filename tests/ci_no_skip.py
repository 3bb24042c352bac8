"""Under CI no test may skip (issue 18): a skip, wherever it comes from, is reported as a failure there.

The CI machines provide everything the suite needs (PostgreSQL, Redis, podman, Node.js, chromium), so a test
that skips in CI has silently not run. Each helper that skips off CI already fails under it (tests/ops/conftest.py
`require`, tests/store/conftest.py, tests/fhirserver.py); this plugin catches every other skip as well: a
`pytest.skip` call, a skip or skipif mark, `pytest.importorskip`, an empty parameter set, a module-level skip.
Expected failures (xfail) are left alone. Registered by tests/conftest.py; tests/test_suite_rules.py checks it.
"""
from __future__ import annotations

import os

import pytest


def _under_ci() -> bool:
    return bool(os.environ.get("CI"))


def _as_failure(report, when: str) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped {when} while CI is set, which no test may do: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if _under_ci() and report.skipped and not hasattr(report, "wasxfail"):
        _as_failure(report, f"in {report.when}")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if _under_ci() and report.skipped:
        _as_failure(report, "at collection")
