"""The gunicorn master's process settings (service/server_tuning.py) take effect, in a fresh interpreter."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from service import server_tuning

ROOT = Path(__file__).parents[2]

PROBE = """
import gc, json
from service import server_tuning
before = gc.get_freeze_count()
server_tuning.tune_collector()
arenas = server_tuning.limit_malloc_arenas()
import service.wsgi  # noqa: F401 - the app, loaded as gunicorn's preload does
server_tuning.freeze_preloaded()
print(json.dumps({"thresholds": gc.get_threshold(), "frozen_before": before,
                  "frozen_after": gc.get_freeze_count(), "arenas": arenas}))
"""


def test_the_collector_is_tuned_the_preloaded_app_frozen_and_malloc_arenas_limited(tmp_path):
    env = {"CDS_DATA_DIR": str(tmp_path), "CDS_MODE": "development", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert tuple(result["thresholds"]) == server_tuning.THRESHOLDS != (700, 10, 10)  # not Python's default
    # Everything the app and its libraries allocated is out of the collector's reach in the workers.
    assert result["frozen_before"] == 0 and result["frozen_after"] > 100_000
    assert result["arenas"] is (sys.platform == "linux" and _glibc())


def _glibc() -> bool:
    import platform
    return platform.libc_ver()[0] == "glibc"
