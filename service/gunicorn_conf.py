"""gunicorn settings for `fasciculation-cds serve` and the container.

Workers and threads come from the validated settings (CDS_WORKERS, CDS_THREADS). Everything
the server writes goes to one directory, CDS_RUNTIME_DIR (the container's only writable
volume): worker heartbeat files, Prometheus multiprocess files, temporary files. The root
file system can then be read-only.

Logs: gunicorn's own lines are JSON like the service's, on stderr. The access log is off: the
service writes its own JSON line per call, with ids and timings and never patient data.
"""
import atexit
import os
import shutil
import tempfile
import time
from pathlib import Path

# -- the runtime directory, before anything imports prometheus_client ---------------------------
# prometheus_client decides when it is first imported whether metrics go to per-process files
# (needed with several workers), so PROMETHEUS_MULTIPROC_DIR is set here, before `service`.

_configured_dir = os.environ.get("CDS_RUNTIME_DIR", "").strip()
RUNTIME_DIR = Path(_configured_dir or tempfile.mkdtemp(prefix="fasciculation-cds-"))
RUNTIME_DIR.mkdir(parents=True, exist_ok=True)
if _configured_dir:
    os.environ.setdefault("TMPDIR", str(RUNTIME_DIR))
else:
    # Made for this server alone: removed when the master exits, however it exits (a port that
    # cannot be bound included). Workers inherit the hook, so it checks it runs in the master.
    _master = os.getpid()
    atexit.register(lambda: os.getpid() == _master and shutil.rmtree(RUNTIME_DIR, ignore_errors=True))

METRICS_DIR = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(RUNTIME_DIR / "prometheus")))
METRICS_DIR.mkdir(parents=True, exist_ok=True)
# Counts from an earlier server are not this server's: start from zero (files only, never a tree).
for _stale in METRICS_DIR.glob("*.db"):
    _stale.unlink()

from service.config import Settings  # noqa: E402  (after PROMETHEUS_MULTIPROC_DIR on purpose)

# Loaded as `python:service.gunicorn_conf`, Python imports the `service` package (and with it
# prometheus_client) before the lines above ran. The value class is only used when a labelled
# metric's child is first made, in the workers, so choosing it again now is in time.
from prometheus_client import values as _prometheus_values  # noqa: E402

_prometheus_values.ValueClass = _prometheus_values.get_value_class()

from service import server_tuning  # noqa: E402

# In the master, inherited by the workers (service/server_tuning.py says why).
server_tuning.tune_collector()
server_tuning.limit_malloc_arenas()

_settings = Settings.from_env()

worker_class = "gthread"
workers = _settings.workers
threads = _settings.threads
# Load the app (and the clinical knowledge) once in the master; workers share it after fork.
preload_app = True
timeout = 30
# On SIGTERM, workers finish the calls they have (an EHR is waiting) for up to this long.
graceful_timeout = 20
keepalive = 5
worker_tmp_dir = str(RUNTIME_DIR)
# gunicorn >= 25.1 would open a control socket under $HOME: nothing to write there, and no
# management interface is wanted inside the container.
control_socket_disable = True
# Workers get recycled now and then so slow leaks can never grow without bound.
max_requests = 20000
max_requests_jitter = 2000

accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    # The service adds its own JSON handler to the root logger; gunicorn must not add another.
    "root": {"level": _settings.log_level, "handlers": []},
    "loggers": {
        "gunicorn.error": {"level": _settings.log_level, "handlers": ["json"], "propagate": False,
                           "qualname": "gunicorn.error"},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False,
                            "qualname": "gunicorn.access"},
    },
    "handlers": {
        "json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "timestamp": False,
        },
    },
}


# One listening socket is shared by the workers, and a kept-alive connection stays with whichever
# worker accepted it: an EHR's connection pool opened while the workers were idle can sit on one of
# them and leave the other cores idle (measured: all 32 benchmark connections on one of two workers).
# So each worker closes a connection now and then (server_tuning.ConnectionShedder says when), in
# proportion to its load; the client reconnects, and a worker with a free core accepts first.
_shedder = server_tuning.ConnectionShedder()


def pre_request(worker, req):  # noqa: ARG001 - gunicorn's hook signature
    if _shedder.should_close(time.monotonic()):
        req.force_close()  # answered normally, with "Connection: close"


def pre_fork(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    """In the master, with the app preloaded: workers never walk (or copy) its objects in a collection."""
    server_tuning.freeze_preloaded()


def child_exit(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    """A worker is gone (recycled, crashed or stopped): its live gauges must not be reported."""
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)

