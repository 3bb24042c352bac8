"""One SQLite writer at a time across threads and processes, woken the moment the last one commits.

SQLite has a single writer; the others wait in its busy handler, which polls with sleeps that grow
to 100 ms. With two gunicorn workers of four threads each writing the card log, a waiting writer
could sleep through many commits: the benchmark's typical chart at 8 connections had a p99 of
~900 ms while its p50 was ~50 ms, and the calls without cards (no write) had no such tail. Writers
now queue on an fcntl lock of a side file: the kernel wakes the next one as soon as the lock is
released, so BEGIN IMMEDIATE finds the database free and the busy handler never sleeps.
PostgreSQL needs none of this (its row locks wake waiters directly).
"""
from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class WriteTurns:
    def __init__(self, database_file: Path | None):
        self._path = None if database_file is None else database_file.with_name(database_file.name + ".write-lock")
        self._in_process = threading.Lock()  # flock is per open file: threads sharing one fd would not wait
        self._fd: int | None = None
        self._owner_pid: int | None = None

    @contextmanager
    def turn(self) -> Iterator[None]:
        if self._path is None:
            yield
            return
        with self._in_process:
            fd = self._lock_file()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None and self._owner_pid == os.getpid():
            os.close(self._fd)
        self._fd = self._owner_pid = None

    def _lock_file(self) -> int:
        # Opened in each process: a descriptor inherited across gunicorn's fork would be one open
        # file shared with the other workers, and would hold their lock as well as its own.
        if self._owner_pid != os.getpid():
            assert self._path is not None
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._owner_pid = os.getpid()
        assert self._fd is not None
        return self._fd
