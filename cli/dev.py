"""``syncbus dev``: the embedded default, supervising broker, PostgreSQL, api and worker."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import httpx
from rich.console import Console
from rich.table import Table

from cli.embedded import EmbeddedBroker, EmbeddedPostgres, free_port, stop_process

# Dev-only conveniences, used only when the variable is unset; printed at start-up.
DEV_DEFAULTS = {
    "ADMIN_API_KEY": "dev-admin-key",
    "ADMIN_PIN": "dev-pin",
    "INTERNAL_SYNC_SHARED_SECRET": "dev-shared-secret",
    "INTERNAL_SYNC_TOKEN": "dev_token",  # seed 000's own local values
    "INTERNAL_SYNC_SECRET": "dev_secret",
    "SYNCBUS_KAFKA_REBALANCE_TIMEOUT_S": "1",
    "SYNCBUS_KAFKA_SESSION_TIMEOUT_S": "2",
    "SYNCBUS_RECONCILE_AFTER_S": "10",
}
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Children get SIGTERM if ``syncbus dev`` itself is killed, so none is left behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    args: list[str], env: dict[str, str], log_path: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``python -m cli <args>`` in its own session (we decide when it stops)."""
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # noqa: PLW1509
    )


def wait_ready(url: str, proc: subprocess.Popen[bytes], deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the api exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready within {deadline_s:.0f}s")


def run_dev(port: int, data_dir: Path, console: Console) -> int:
    started = time.monotonic()
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    broker: EmbeddedBroker | None = None
    postgres: EmbeddedPostgres | None = None
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    defaults_used: list[str] = []
    try:
        if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
            broker = EmbeddedBroker(free_port(), log_path=data_dir / "broker.log").start()
            env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
        if not env.get("DATABASE_URL"):
            postgres = EmbeddedPostgres(data_dir / "pg", free_port()).start()
            env["DATABASE_URL"] = postgres.create_database("syncbus")
        for key, value in DEV_DEFAULTS.items():
            if not env.get(key):
                env[key] = value
                defaults_used.append(key)
        migrate = subprocess.run([sys.executable, "-m", "cli", "migrate"], env=env, check=False)
        if migrate.returncode != 0:
            console.print("[red]migrations failed[/red]")
            return 1
        children.append(("worker", spawn(["worker"], env, data_dir / "worker.log")))
        api = spawn(["api", "--port", str(port)], env)
        children.append(("api", api))
        wait_ready(f"http://127.0.0.1:{port}/readyz", api, 30)
        _print_summary(console, env, port, data_dir, defaults_used, time.monotonic() - started)
        while not stop.is_set():
            for name, proc in children:
                if proc.poll() is not None:
                    console.print(f"[red]{name} exited with {proc.returncode}; stopping[/red]")
                    stop.set()
            stop.wait(0.5)
        return 0
    except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
        console.print(f"[red]syncbus dev could not start: {exc}[/red]")
        return 1
    finally:
        console.print("stopping…")
        for _name, proc in reversed(children):
            stop_process(proc, signal.SIGTERM, grace_s=15)
        if broker is not None:
            broker.stop()
        if postgres is not None:
            postgres.stop()
        console.print("stopped")


def _print_summary(
    console: Console,
    env: dict[str, str],
    port: int,
    data_dir: Path,
    defaults_used: list[str],
    elapsed: float,
) -> None:
    table = Table(title=f"syncbus is ready ({elapsed:.1f}s)", show_header=False)
    table.add_row("API", f"http://127.0.0.1:{port}  (OpenAPI: /docs)")
    table.add_row("Kafka", env["KAFKA_BOOTSTRAP_SERVERS"])
    table.add_row("PostgreSQL", env["DATABASE_URL"])
    table.add_row("Data and logs", str(data_dir))
    for key in defaults_used:
        if not key.startswith("SYNCBUS_"):
            table.add_row(key, f"{env[key]}  (dev default; set it to choose)")
    console.print(table)
    console.print("Ctrl-C stops everything.")
