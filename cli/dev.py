"""``syncbus dev``: the embedded default, supervising broker, PostgreSQL, api and worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.table import Table

from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from cli.processes import free_port, spawn_syncbus, stop_process, wait_http_ok

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
        children.append(
            (
                "worker",
                spawn_syncbus(["worker"], env, data_dir / "worker.log", die_with_parent=True),
            )
        )
        api = spawn_syncbus(["api", "--port", str(port)], env, die_with_parent=True)
        children.append(("api", api))
        wait_http_ok(f"http://127.0.0.1:{port}/readyz", api, 30)
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
