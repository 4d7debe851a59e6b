"""Readiness means OUR child answers: another program holding the port never counts."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cli.processes import free_port, port_problem, stop_process, wait_http_ok


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def stranger() -> Iterator[int]:
    """Some other program answering 200 on a port; yields the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join(5)


def python(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def test_a_child_that_failed_to_bind_is_not_ready_although_the_port_answers(
    stranger: int,
) -> None:
    # Like uvicorn on a taken port: it gives up while the other program answers 200.
    child = python("raise SystemExit(1)")
    with pytest.raises(RuntimeError, match="exited with code 1"):
        wait_http_ok(f"http://127.0.0.1:{stranger}/readyz", child, 10)


def test_a_live_child_that_does_not_hold_the_port_is_never_ready(stranger: int) -> None:
    child = python("import time; time.sleep(60)")
    try:
        with pytest.raises(TimeoutError):
            wait_http_ok(f"http://127.0.0.1:{stranger}/readyz", child, 1)
    finally:
        stop_process(child)


def test_the_child_that_holds_the_port_is_ready() -> None:
    port = free_port()
    child = python(
        "import http.server as h, sys; "
        f"h.ThreadingHTTPServer(('127.0.0.1', {port}), h.SimpleHTTPRequestHandler).serve_forever()"
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/", child, 20)
    finally:
        stop_process(child)


def test_port_problem_tells_a_taken_port_from_a_free_one() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        assert port_problem(taken) == "is in use"
    assert port_problem(free_port()) is None
