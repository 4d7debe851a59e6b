"""Child processes: free ports, waiting for them to listen or be ready, stopping them cleanly."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import psutil

PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_problem(port: int) -> str | None:
    """Why a server could not listen on 127.0.0.1:port now ("is in use", ...); None if it can."""
    with socket.socket() as sock:
        # As the servers do: a port whose last connections are in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "is in use"
            return f"cannot be used: {(exc.strerror or str(exc)).lower()}"
    return None


def owns_listener(proc: subprocess.Popen[bytes], port: int) -> bool:
    """Whether ``proc`` itself has a TCP socket listening on ``port``."""
    try:
        sockets = psutil.Process(proc.pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(s.status == psutil.CONN_LISTEN and s.laddr and s.laddr.port == port for s in sockets)


def serves_ok(proc: subprocess.Popen[bytes], url: str) -> bool:
    """``url`` answers 200 from ``proc``: another program that holds the port does not count."""
    port = httpx.URL(url).port
    if port is None or not owns_listener(proc, port):
        return False
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=1).status_code == 200
    return False


def exit_description(returncode: int) -> str:
    """``exited with code 1`` or ``was killed by SIGKILL``."""
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


def wait_for_port(
    port: int, deadline_s: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until 127.0.0.1:port accepts connections, or raise after ``deadline_s``."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {deadline_s:.0f}s")


def wait_http_ok(url: str, proc: subprocess.Popen[bytes], deadline_s: float) -> None:
    """Block until ``proc`` answers 200 at ``url``; raise if it exits or the deadline passes."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the process {exit_description(proc.returncode)}")
        if serves_ok(proc, url):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready within {deadline_s:.0f}s")


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace_s: float = 10
) -> None:
    """Signal a child and wait for it; kill it if it outlives ``grace_s``."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def exit_with_parent() -> None:
    """The child gets SIGTERM if its parent is killed, so none is left behind (preexec_fn)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn_syncbus(
    args: list[str],
    env: dict[str, str],
    log_path: Path | None = None,
    *,
    die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``python -m cli <args>`` in its own session (its parent decides when it stops)."""
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
            preexec_fn=exit_with_parent if die_with_parent else None,  # noqa: PLW1509
        )
    finally:
        if out is not None:
            out.close()  # the child has its own copy


# The service's own settings and secrets: a child started for a test or a benchmark gets
# them from its caller only, never from the shell it was started in.
SERVICE_ENV_PREFIXES = ("INTERNAL_SYNC", "ADMIN_", "SYNCBUS_", "RF_SYNC")


def child_env(*layers: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without the service's settings, then ``layers`` in order."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_ENV_PREFIXES)}
    for layer in layers:
        env.update(layer)
    return env
