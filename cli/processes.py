"""Child processes: free ports, waiting for them to listen or be ready, stopping them cleanly."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    """Block until ``url`` answers 200; raise if ``proc`` exits or the deadline passes."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the process exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
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


def _die_with_parent() -> None:
    """The child gets SIGTERM if its parent is killed, so none is left behind."""
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
    return subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        start_new_session=True,
        preexec_fn=_die_with_parent if die_with_parent else None,  # noqa: PLW1509
    )


# The service's own settings and secrets: a child started for a test or a benchmark gets
# them from its caller only, never from the shell it was started in.
SERVICE_ENV_PREFIXES = ("INTERNAL_SYNC", "ADMIN_", "SYNCBUS_", "RF_SYNC")


def child_env(*layers: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without the service's settings, then ``layers`` in order."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_ENV_PREFIXES)}
    for layer in layers:
        env.update(layer)
    return env
