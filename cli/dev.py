"""``syncbus dev``: the embedded default, supervising broker, PostgreSQL, api and worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from cli.config import MISCONFIGURED, load_settings
from cli.console import error
from cli.devenv import DEFAULT_PATH, FILE_NAME, PATH_VARIABLE, dev_env_values, write_dev_env
from cli.embedded import (
    MEMORY_STORAGE,
    BrokerStorageUnsupported,
    EmbeddedBroker,
    EmbeddedPostgres,
)
from cli.lock import LockHeldError, PidLock
from cli.processes import (
    exit_description,
    free_port,
    port_problem,
    serves_ok,
    spawn_syncbus,
    stop_process,
)
from schemas.settings import Settings

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
READY_DEADLINE_S = 30
BROKER_DATABASE = "tansu"  # the broker's own database in dev's PostgreSQL
FORGOTTEN = "memory (forgotten when dev stops)"


@dataclass(frozen=True)
class DevOptions:
    port: int
    kafka_port: int
    pg_port: int  # 0: any free port
    data_dir: Path


class DevError(Exception):
    """Why dev cannot go on, in one line."""


@dataclass
class Child:
    """A supervised process and where its output goes."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def death(self) -> str | None:
        """``worker exited with code 1 (log: ...)`` once it has ended, else None."""
        if self.proc.poll() is None:
            return None
        return f"{self.name} {exit_description(self.proc.returncode)} (log: {self.log})"


def run_dev(options: DevOptions, console: Console) -> int:
    """Exit code: 0 after Ctrl-C, 1 if something failed or stopped, 2 if misconfigured."""
    settings = load_settings(console)  # an invalid variable is one line, before anything starts
    data_dir = options.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = PidLock(data_dir / "dev.lock")
    try:
        lock.acquire()
    except LockHeldError as held:
        who = f" (pid {held.pid})" if held.pid else ""
        error(console, f"another syncbus dev{who} is using {data_dir}")
        return MISCONFIGURED
    try:
        env = dict(os.environ)
        taken = _taken_port(options, env)
        if taken is not None:
            error(console, taken)
            return MISCONFIGURED
        return _Run(options, data_dir, env, settings, console).run()
    finally:
        lock.release()


def _taken_port(options: DevOptions, env: dict[str, str]) -> str | None:
    """The first port dev would listen on that it cannot, as a line naming its option."""
    ports = {"--port": options.port}
    if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
        ports["--kafka-port"] = options.kafka_port
    if not env.get("DATABASE_URL") and options.pg_port:
        ports["--pg-port"] = options.pg_port
    seen: dict[int, str] = {}
    for option, port in ports.items():
        if port in seen:
            return f"{seen[port]} and {option} are both {port}: give each its own port"
        seen[port] = option
        problem = port_problem(port)
        if problem is not None:
            return f"port {port} {problem}: choose another with {option}"
    return None


class _Run:
    """One start-to-stop of the dev stack (the lock is held and the ports were free)."""

    def __init__(
        self,
        options: DevOptions,
        data_dir: Path,
        env: dict[str, str],
        settings: Settings,
        console: Console,
    ) -> None:
        self.options = options
        self.data_dir = data_dir
        self.env = env
        self.settings = settings
        self.console = console
        self.broker_storage = ""  # where the embedded broker keeps its topics, for the summary
        self.stop = threading.Event()
        self.dev_env = data_dir / FILE_NAME
        self.broker: EmbeddedBroker | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.children: list[Child] = []  # api and worker, stopped before the services
        self.watched: list[Child] = []  # every process whose end stops dev

    def run(self) -> int:
        started = time.monotonic()

        def on_signal(_signum: int, _frame: FrameType | None) -> None:
            self.stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, on_signal)
        self.dev_env.unlink(missing_ok=True)  # left by a dev that was killed
        try:
            defaults_used = self._start()
            if not self._wait_ready():
                return 0  # Ctrl-C while starting
            write_dev_env(self.dev_env, dev_env_values(self.env, self.options.port))
            self._print_summary(defaults_used, time.monotonic() - started)
            while not self.stop.wait(0.5):
                for child in self.watched:
                    death = child.death()
                    if death is not None:
                        error(self.console, death)
                        return 1
            return 0
        except DevError as exc:
            error(self.console, str(exc))
            return 1
        except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
            error(self.console, f"syncbus dev could not start: {exc}")
            return 1
        finally:
            self._stop_all()

    def _start(self) -> list[str]:
        env, data_dir = self.env, self.data_dir
        # PostgreSQL first: the broker may keep its topics there.
        if not env.get("DATABASE_URL"):
            port = self.options.pg_port or free_port()
            postgres = EmbeddedPostgres(data_dir / "pg", port, die_with_parent=True)
            self.postgres = postgres.start()
            assert postgres.proc is not None
            self.watched.append(Child("postgres", postgres.proc, postgres.log_path))
            env["DATABASE_URL"] = postgres.create_database("syncbus")
        if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
            broker = self._start_broker()
            assert broker.proc is not None
            self.watched.append(Child("broker", broker.proc, data_dir / "broker.log"))
            env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
        defaults_used = [key for key, value in DEV_DEFAULTS.items() if not env.get(key)]
        env.update({key: DEV_DEFAULTS[key] for key in defaults_used})
        migrate = subprocess.run(
            [sys.executable, "-m", "cli", "migrate"], env=env, capture_output=True, check=False
        )
        if migrate.returncode != 0:
            output = (migrate.stderr or migrate.stdout).decode(errors="replace").strip()
            reason = output.splitlines()[-1] if output else exit_description(migrate.returncode)
            raise DevError(f"migrations failed: {reason}")
        for name, args in (
            ("worker", ["worker"]),
            ("api", ["api", "--port", str(self.options.port)]),
        ):
            log = data_dir / f"{name}.log"
            child = Child(name, spawn_syncbus(args, env, log, die_with_parent=True), log)
            self.children.append(child)
            self.watched.append(child)
        return defaults_used

    def _start_broker(self) -> EmbeddedBroker:
        """The embedded broker, its topics in dev's PostgreSQL when the setting asks for it
        and the broker can; otherwise in memory, and the summary says why."""
        log = self.data_dir / "broker.log"
        port = self.options.kafka_port
        self.broker_storage = FORGOTTEN
        if self.settings.dev_broker_storage == "postgres":
            if self.postgres is None:
                self.broker_storage += ": DATABASE_URL is set, dev runs no PostgreSQL of its own"
            else:
                url = self.postgres.create_database(BROKER_DATABASE)
                storage = "postgres://" + url.partition("://")[2]
                try:
                    self.broker = EmbeddedBroker(
                        port, log_path=log, die_with_parent=True, storage=storage
                    ).start()
                    self.broker_storage = f"PostgreSQL, database {BROKER_DATABASE} (kept)"
                    return self.broker
                except BrokerStorageUnsupported as exc:
                    self.broker_storage += (
                        f": this broker build has no {exc.feature} storage "
                        "(FeatureNotEnabled, see docs/deployment.md)"
                    )
        broker = EmbeddedBroker(port, log_path=log, die_with_parent=True, storage=MEMORY_STORAGE)
        self.broker = broker.start()
        return self.broker

    def _wait_ready(self) -> bool:
        """True once OUR api answers /readyz (not whatever holds the port); False on Ctrl-C."""
        api = self.children[-1]
        url = f"http://127.0.0.1:{self.options.port}/readyz"
        end = time.monotonic() + READY_DEADLINE_S
        while not self.stop.is_set():
            for child in self.watched:
                death = child.death()
                if death is not None:
                    raise DevError(death)
            if serves_ok(api.proc, url):
                return True
            if time.monotonic() > end:
                raise DevError(f"api not ready within {READY_DEADLINE_S}s (log: {api.log})")
            self.stop.wait(0.1)
        return False

    def _stop_all(self) -> None:
        self.console.print("stopping…")
        self.dev_env.unlink(missing_ok=True)
        for child in reversed(self.children):
            stop_process(child.proc, signal.SIGTERM, grace_s=15)
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()
        self.console.print("stopped")

    def _print_summary(self, defaults_used: list[str], elapsed: float) -> None:
        env = self.env
        table = Table(title=f"syncbus is ready ({elapsed:.1f}s)", show_header=False)
        api = f"http://127.0.0.1:{self.options.port}"
        table.add_row("API", f"{api}  (OpenAPI: /docs, metrics: /metrics)")
        table.add_row("Admin page", f"{api}/admin  (sign in with ADMIN_API_KEY or ADMIN_PIN)")
        metrics_port = env.get("SYNCBUS_WORKER_METRICS_PORT", "9464")
        if metrics_port != "0":
            table.add_row("Worker metrics", f"http://127.0.0.1:{metrics_port}/metrics")
        table.add_row("Kafka", env["KAFKA_BOOTSTRAP_SERVERS"])
        if self.broker_storage:
            table.add_row("Kafka topics in", self.broker_storage)
        table.add_row("PostgreSQL", make_url(env["DATABASE_URL"]).render_as_string())
        table.add_row("Data and logs", str(self.data_dir))
        if self.dev_env == (Path.cwd() / DEFAULT_PATH).resolve():
            clients = "syncbus send/trigger/health/topics/tail/inspect"
            table.add_row("Other terminals", f"{clients} read {DEFAULT_PATH}")
        else:
            table.add_row("Other terminals", f"export {PATH_VARIABLE}={self.dev_env}")
        for key in defaults_used:
            if not key.startswith("SYNCBUS_"):
                table.add_row(key, f"{env[key]}  (dev default; set it to choose)")
        self.console.print(table)
        self.console.print("Ctrl-C stops everything.")
