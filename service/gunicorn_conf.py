"""gunicorn settings for `fasciculation-cds serve` and the container.

Workers and threads come from the validated settings. The access log is off: a URL
carries no PHI here, but the service's own JSON line per call says more, and says it safely.
"""
from service.config import Settings

_settings = Settings.from_env()

worker_class = "gthread"
workers = _settings.workers
threads = _settings.threads
# Load the app (and the clinical knowledge) once in the master; workers share it after fork.
preload_app = True
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()
# Workers get recycled now and then so slow leaks can never grow without bound.
max_requests = 20000
max_requests_jitter = 2000
