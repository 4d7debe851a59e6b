"""Logging for syncbus processes: one line per record (text, or a JSON object with
SYNCBUS_LOG_FORMAT=json), naming the job a line is about, never a secret."""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson

from schemas.log_context import FIELDS, JobContextFilter

FORMAT_VARIABLE = "SYNCBUS_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """The classic line, with the job's ids appended when it is about one."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{name}={value}" for name, value in _job_fields(record))
        if not ids:
            return line
        first, newline, rest = line.partition("\n")  # a traceback stays below the line
        return f"{first} [{ids}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the job's ids, and ``exc``
    (the exception with its traceback) as a single string field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_job_fields(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def _job_fields(record: logging.LogRecord) -> list[tuple[str, str]]:
    return [(name, str(value)) for name in FIELDS if (value := getattr(record, name, None))]


def log_format(chosen: str | None = None) -> str:
    """``json`` or ``text``: ``chosen``, else SYNCBUS_LOG_FORMAT (validated by the settings)."""
    value = chosen or os.environ.get(FORMAT_VARIABLE, "text")
    return "json" if value.strip().lower() == "json" else "text"


def configure(level: str, fmt: str | None = None) -> None:
    handler = logging.StreamHandler()
    json_lines = log_format(fmt) == "json"
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(JobContextFilter())
    logging.basicConfig(level=level.upper(), handlers=[handler])
    for noisy in ("faust", "mode", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # aiokafka logs dozens of errors a second while the broker is away; Faust reconnects.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if json_lines:
        _everything_through_logging()


def _everything_through_logging() -> None:
    """What would reach stderr some other way goes through the JSON handler too: warnings
    and an exception that ends the process (``syncbus api`` runs uvicorn without a logging
    config of its own, so its loggers propagate here)."""
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(
    kind: type[BaseException], error: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, tb)
        return
    logging.getLogger("syncbus").critical(
        "the process stopped on an unhandled error", exc_info=(kind, error, tb)
    )
