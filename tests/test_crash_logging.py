"""streams/crash_logging.py: Faust's and mode's crash reports through logging, a broker
error's without its traceback, and nothing printed past the log handlers."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator

import pytest
from aiokafka.errors import IllegalStateError, KafkaConnectionError
from mode.threads import ServiceThread

from cli.logs import TextFormatter
from streams.crash_logging import BROKER_ERRORS, crash_reports_through_logging

BROKER_GONE = KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9)]")


@pytest.fixture
def log_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """What the process's log handler writes, with the crash reporting installed; the
    process-wide hooks are put back afterwards."""
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    monkeypatch.setattr(ServiceThread, "on_crash", ServiceThread.on_crash)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        crash_reports_through_logging()
        yield out
    finally:
        for each in root.handlers:  # pytest's own handlers got the filter too
            each.removeFilter(BROKER_ERRORS)
        root.removeHandler(handler)


def log_raised(logger: str, error: BaseException) -> None:
    try:
        raise error
    except BaseException:
        logging.getLogger(logger).exception("[^App]: Crashed reason=%r", error)


@pytest.mark.parametrize(
    ("logger", "error", "traceback"),
    [
        ("faust.app.base", BROKER_GONE, False),
        ("mode.services", BROKER_GONE, False),
        ("faust.app.base", ValueError("a bug"), True),
        ("faust.app.base", IllegalStateError("a bug"), True),
        ("streams.worker", BROKER_GONE, True),
    ],
    ids=[
        "faust, broker away",
        "mode, broker away",
        "faust, other error",
        "faust, other Kafka error",
        "our own record",
    ],
)
def test_only_faust_and_mode_records_of_broker_errors_lose_their_traceback(
    log_output: io.StringIO, logger: str, error: BaseException, traceback: bool
) -> None:
    log_raised(logger, error)
    written = log_output.getvalue()
    assert f"Crashed reason={error!r}" in written
    assert ("Traceback" in written) is traceback, written


def test_a_crashed_service_thread_is_logged_not_printed(
    log_output: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        raise BROKER_GONE
    except KafkaConnectionError as exc:
        ServiceThread.on_crash(None, "{0!r} crashed: {1!r}", "AIOKafkaConsumerThread", exc)  # type: ignore[arg-type]
    assert capsys.readouterr().err == ""
    lines = log_output.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert f"ERROR mode.threads: 'AIOKafkaConsumerThread' crashed: {BROKER_GONE!r}" in lines[0]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (BROKER_GONE, f"WARNING mode.threads: thread doomed stopped: {BROKER_GONE!r}"),
        (RuntimeError("Event loop is closed"), "ERROR syncbus: thread doomed stopped on an error"),
        (SystemExit(0), None),
    ],
    ids=["broker error: one line", "other error: with its traceback", "SystemExit: nothing"],
)
def test_a_thread_ending_on_an_error_says_so_through_logging(
    log_output: io.StringIO, capsys: pytest.CaptureFixture[str], error: BaseException,
    expected: str,
) -> None:  # fmt: skip
    def fail() -> None:
        raise error

    thread = threading.Thread(target=fail, name="doomed")
    thread.start()
    thread.join()
    assert capsys.readouterr().err == ""
    written = log_output.getvalue()
    if expected is None:
        assert written == ""
        return
    assert written.splitlines()[0].endswith(expected), written
    assert ("Traceback" in written) is (not isinstance(error, KafkaConnectionError))
