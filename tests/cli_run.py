"""Running the ``syncbus`` command as a user would: a clean environment, a dev stack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from cli.processes import free_port
from tests.waiting import wait_for


def clean_env(**extra: str) -> dict[str, str]:
    """A new terminal's environment: none of syncbus's settings."""
    drop = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "ADMIN_", "INTERNAL_SYNC_", "SYNCBUS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith((*drop, "RF_SYNC_"))}
    return {**env, "COLUMNS": "200", **extra}


@dataclass
class Dev:
    """A ``syncbus dev`` process started in ``cwd`` with its data in ``cwd/.syncbus``."""

    proc: subprocess.Popen[str]
    cwd: Path
    port: int
    kafka_port: int
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None
    stripe_url: str = ""  # where a test serves the fake Stripe the README's example uses

    @property
    def data_dir(self) -> Path:
        return self.cwd / ".syncbus"

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self) -> None:
        wait_for(
            lambda: "syncbus is ready" in self.output or self.proc.poll() is not None,
            timeout=30,
            what="syncbus dev to be ready",
        )
        assert "syncbus is ready" in self.output, self.output

    def child(self, fragment: str) -> psutil.Process:
        """The one child of THIS dev whose command line holds ``fragment``."""
        found = [
            c
            for c in psutil.Process(self.proc.pid).children(recursive=True)
            if fragment in " ".join(c.cmdline())
        ]
        assert len(found) == 1, [c.cmdline() for c in found]
        return found[0]

    def wait(self, timeout: float = 60) -> int:
        """Its exit code, once every line it printed has been read."""
        code = self.proc.wait(timeout)
        if self.reader is not None:
            self.reader.join(10)
        return code

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.wait()


def start_dev(
    cwd: Path, env: dict[str, str], *args: str, port: int = 0, kafka_port: int = 0
) -> Dev:
    port, kafka_port = port or free_port(), kafka_port or free_port()
    command = ["dev", "--port", str(port), "--kafka-port", str(kafka_port), *args]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", *command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    dev = Dev(proc, cwd, port, kafka_port)

    def collect() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            dev.lines.append(line)

    dev.reader = threading.Thread(target=collect, daemon=True)
    dev.reader.start()
    return dev


def syncbus(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``syncbus ARGS`` to completion, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def captured(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``syncbus ARGS`` in a clean environment plus ``env``, its output going to a pipe (no
    COLUMNS: where rich used to wrap at 80)."""
    environ = {k: v for k, v in clean_env(**env).items() if k != "COLUMNS"}
    return syncbus(*args, cwd=cwd, env=environ)
