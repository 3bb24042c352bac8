"""Capture every log record, formatted every way a log pipeline could see it, for leak checks."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from pythonjsonlogger.json import JsonFormatter


class CaptureEverything(logging.Handler):
    """Keeps each record, its JSON line as the service writes it, and its raw attributes."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self.json = JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.json.format(record))
        self.lines.append(repr(record.__dict__))


@contextlib.contextmanager
def capturing_all_logs() -> Iterator[CaptureEverything]:
    handler = CaptureEverything()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
