"""bench/soak for 30 seconds: the production-like service under a steady mixed load keeps its promises.

The full soak (10 minutes by default) is a command of its own, `bench/soak`; this runs the same
command briefly. It needs PostgreSQL and Redis: CI has both, so there their absence fails the test.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.ops.conftest import require
from tests.robustness.conftest import redis_or_skip
from tests.servers import ROOT, find_postgres

pytestmark = pytest.mark.integration

SECONDS = 30
RATE = 15


def test_a_short_soak_has_no_error_no_memory_growth_and_loses_no_feedback(tmp_path):
    server, problems = find_postgres()
    require(server is not None, "PostgreSQL is not reachable (" + "; ".join(problems) + ")")
    redis_url = redis_or_skip()
    report = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, "-m", "bench.soak", "--duration", str(SECONDS), "--rate", str(RATE),
                          "--database-url", server, "--redis-url", redis_url, "--json", str(report)],
                         cwd=ROOT, capture_output=True, text=True, timeout=SECONDS + 150)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-4000:]
    result = json.loads(report.read_text())
    assert result["passed"] and all(result["checks"].values()), result["checks"]
    assert result["errors"] == 0
    assert result["calls"] >= SECONDS * RATE * 0.95
    assert result["scenarios_served"] == result["scenarios_in_fixtures"]
    assert result["database_rows"]["card_feedback"] == result["feedback_items_accepted"] > 0
    assert result["rss_mib"]["growth_after_warmup"] < 0.10
    print(f"soak {SECONDS} s: {result['calls']} calls, 0 errors, RSS {result['rss_mib']['after_warmup']} -> "
          f"{result['rss_mib']['end']} MiB ({result['rss_mib']['growth_after_warmup']:+.1%}), "
          f"{result['feedback_items_accepted']} feedback items = {result['database_rows']['card_feedback']} rows, "
          f"service p95 {result['latency_ms']['service']['p95']} ms")
