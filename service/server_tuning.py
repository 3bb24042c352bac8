"""Process settings for the gunicorn server: the garbage collector and the C allocator.

Applied by `service/gunicorn_conf.py` in the master, so the workers inherit them (and the benchmark's
ceiling app, run under the same configuration, gets the same); `bench/profile.py` applies them too, to
measure what the server runs.

- `freeze_preloaded()`: gunicorn loads the app, the clinical knowledge and every library once in the
  master (`preload_app`); frozen before the workers fork, those objects move to the permanent
  generation, so no collection in a worker ever walks them again. Unfrozen, each full collection
  walked the whole application, about a million objects, and requests running side by side in one
  worker promote enough short-lived objects to trigger full collections often. It also keeps the
  pages shared with the master shared: a collection writes to every object it visits.
- `tune_collector()`: a parsed request body is a burst of container objects (a 2 MB chart is half a
  million dicts, lists and strings) that nearly all die by reference counting; the default young
  generation threshold (700) runs dozens of pointless collections during one parse. The thresholds
  below let a burst finish first. This is safe only because a review creates no reference cycles
  holding a chart (see PatientPass in cards/view_builder.py): cyclic garbage is collected later.
- `ConnectionShedder`: when a worker closes a kept-alive connection after the call it carries, so
  that the workers share persistent connections (see gunicorn_conf.pre_request).
- `limit_malloc_arenas()`: glibc gives each thread that allocates its own malloc arena, and freed
  memory scattered over several arenas is not returned to the system: a worker's resident memory
  after large charts was 20-30 MB higher with gunicorn's threads each holding an arena. Two arenas
  (as MALLOC_ARENA_MAX=2 does) keep it down; the allocator's lock is no bottleneck under the GIL.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading

THRESHOLDS = (20_000, 20, 50)
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def tune_collector() -> None:
    gc.set_threshold(*THRESHOLDS)


def freeze_preloaded() -> None:
    """Move every object alive now to the permanent generation (call in the master, before forking)."""
    gc.collect()
    gc.freeze()


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """glibc only; elsewhere (musl, macOS) nothing to do. True when applied."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(_M_ARENA_MAX, arenas) == 1


class ConnectionShedder:
    """Decides, call by call, when a worker closes the connection a call came on.

    At most one connection in `min_calls`, then one when `max_calls` calls or `after_seconds` have
    gone by since the last: a busy worker sheds several connections a second whatever its call rate
    (so an uneven spread evens out within seconds), an idle one sheds almost none, and a client
    reconnects for at most one call in `min_calls` (nginx's keepalive_requests is the same idea,
    by count alone).
    """

    def __init__(self, min_calls: int = 10, max_calls: int = 100, after_seconds: float = 0.2):
        self.min_calls, self.max_calls, self.after_seconds = min_calls, max_calls, after_seconds
        self._calls = 0
        self._since: float | None = None
        self._lock = threading.Lock()  # gthread runs pre_request in several threads

    def should_close(self, now: float) -> bool:
        with self._lock:
            if self._since is None:
                self._since = now
            self._calls += 1
            due = self._calls >= self.max_calls or now - self._since >= self.after_seconds
            if self._calls < self.min_calls or not due:
                return False
            self._calls, self._since = 0, now
            return True
