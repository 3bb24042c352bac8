"""Structured logs: one JSON object per line, for the hospital's log pipeline.

Log records carry ids, counts and timings only. Tokens and patient data are never
passed to a logger in the first place; tests scan the captured output to keep it so.
"""
from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

_CONFIGURED_MARK = "_fasciculation_cds_handler"


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    root.setLevel(level)
    # urllib3 logs every URL it fetches at DEBUG; FHIR query URLs name the patient.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    if any(getattr(handler, _CONFIGURED_MARK, False) for handler in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        timestamp=False,
    ))
    setattr(handler, _CONFIGURED_MARK, True)
    root.addHandler(handler)
