"""A running syncbus (api + worker processes) against the session's broker and PostgreSQL."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from cli.processes import child_env, free_port, spawn_syncbus, stop_process, wait_http_ok
from db.migrate import upgrade
from schemas.settings import Settings

ADMIN_KEY = "test-admin-key"
ADMIN_PIN = "test-pin"
SECRET = "test-secret"
OLD_SECRET = "old-secret"

BASE_ENV = {
    "ADMIN_API_KEY": ADMIN_KEY,
    "ADMIN_PIN": ADMIN_PIN,
    "INTERNAL_SYNC_SHARED_SECRET": f"{OLD_SECRET},{SECRET}",
    "INTERNAL_SYNC_SOURCE": "de-ai-worker",
    "INTERNAL_SYNC_ALLOWED_IPS": "127.0.0.1,::1",
    "SYNCBUS_KAFKA_REBALANCE_TIMEOUT_S": "1",
    "SYNCBUS_KAFKA_SESSION_TIMEOUT_S": "2",
    "SYNCBUS_BROKER_WATCH_INTERVAL_S": "0.5",
    "SYNCBUS_RECONCILE_AFTER_S": "2",
    "SYNCBUS_RECONCILE_INTERVAL_MS": "300",
    "SYNCBUS_OUTBOX_POLL_MS": "200",
    "SYNCBUS_JOB_STALE_AFTER_S": "30",
    "SYNCBUS_SSE_DB_POLL_S": "0.5",
    "SYNCBUS_PROGRESS_INTERVAL_MS": "0",
    "SYNCBUS_LOG_LEVEL": "INFO",
    # Tansu answers a waiting fetch only when the wait ends, so each idle consumer fetches
    # 1000/N times a second: at the 10 ms default an idle stack cost its broker and itself
    # 27 % of a CPU, 11 % at 50 ms, for ~20 ms more a hop (suite 783 -> 676 s).
    "SYNCBUS_KAFKA_FETCH_WAIT_MS": "50",
    # Seed 003's daily models sync (02:00 UTC by default) would fire in any test that runs
    # across that minute, one job more than the test made; schedule tests set their own.
    "MODELS_SYNC_CRON": "",
    # Tests send wrong credentials on purpose, all from 127.0.0.1; test_auth_limit sets its own.
    "SYNCBUS_AUTH_FAILURES_PER_MINUTE": "100000",
    # A process that hangs on SIGTERM writes its threads' stacks on SIGABRT (Stack.stop).
    "PYTHONFAULTHANDLER": "1",
    # Many workers run at once: none takes the default 9464; Stack.start_worker gives each
    # of its workers a free port of its own.
    "SYNCBUS_WORKER_METRICS_PORT": "0",
}

_database_names = itertools.count(1)
# Each PostgreSQL's migrated database to copy (by data directory and port), in this process:
# a copy takes ~0.07 s where running the migrations takes ~0.26 s, ~200 times a suite.
_templates: dict[tuple[Path, int], str] = {}
STOP_GRACE_S = 20
SLOW_STOP_S = 5.0


def warn_if_slow_to_stop(what: str, asked: float, detail: Callable[[], str] = lambda: "") -> None:
    """Not a failure, but worth knowing where it waited: a teardown step ("stopping
    worker") begun at ``asked`` (``time.monotonic()``) that took over SLOW_STOP_S shows in
    the warnings summary, with ``detail()``."""
    took = time.monotonic() - asked
    if took > SLOW_STOP_S:
        warnings.warn(f"{what} took {took:.1f}s{detail()}", stacklevel=3)


@contextlib.contextmanager
def warn_if_slow(what: str) -> Iterator[None]:
    """``warn_if_slow_to_stop`` around a teardown step: ``with warn_if_slow("stopping X")``."""
    asked = time.monotonic()
    yield
    warn_if_slow_to_stop(what, asked)


@dataclass
class Stack:
    """One syncbus deployment: its own database (and optionally its own broker)."""

    postgres: EmbeddedPostgres
    broker: EmbeddedBroker
    log_dir: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    database_url: str = ""
    api_port: int = 0
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    log_paths: dict[str, Path] = field(default_factory=dict)
    # Each worker's /metrics port, by process name.
    metrics_ports: dict[str, int] = field(default_factory=dict)
    # Names its topics, consumer group and logs. Never an id(): CPython reuses the address
    # of a freed stack, and a later test then read the earlier one's topics and offsets.
    name: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def env(self) -> dict[str, str]:
        return self.env_with({})

    def env_with(self, extra: dict[str, str]) -> dict[str, str]:
        """The processes' environment with ``extra`` under the test's own overrides."""
        own = {
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
            "DATABASE_URL": self.database_url,
            "SYNCBUS_TOPIC_PREFIX": f"t{self.name}.",
            # Faust keeps a data directory per group in the temp dir: the session's.
            "TMPDIR": str(self.log_dir),
        }
        return child_env(BASE_ENV, own, extra, self.env_overrides)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def push_url(self) -> str:
        return f"{self.url}/api/internal/dictionary-upserts"

    @property
    def settings(self) -> Settings:
        return Settings(DATABASE_URL=self.database_url)

    def create(self) -> Stack:
        """A new database, migrated (a copy of a database the migrations made)."""
        server = (self.postgres.data_dir, self.postgres.port)
        template = _templates.get(server)
        if template is None:
            template = f"syncbus_{os.getpid()}_migrated"
            upgrade(Settings(DATABASE_URL=self.postgres.create_database(template)))
            _templates[server] = template
        name = f"syncbus_{os.getpid()}_{next(_database_names)}"
        self.database_url = self.postgres.create_database(name, template=template)
        return self

    def _spawn(
        self, name: str, args: list[str], extra: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        path = self.log_dir / f"{name}-{self.name}-{len(self.log_paths)}.log"
        self.log_paths[name] = path
        proc = spawn_syncbus(args, self.env_with(extra or {}), path)
        self.procs[name] = proc
        return proc

    def start_api(self) -> None:
        if not self.api_port:
            self.api_port = free_port()
        proc = self._spawn("api", ["api", "--port", str(self.api_port)])
        try:
            wait_http_ok(f"{self.url}/readyz", proc, 30)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"api not ready: {exc}\n{self.log('api')[-3000:]}") from None

    def start_worker(self, name: str = "worker") -> subprocess.Popen[bytes]:
        port = free_port()
        self.metrics_ports[name] = port
        return self._spawn(name, ["worker"], {"SYNCBUS_WORKER_METRICS_PORT": str(port)})

    def metrics_url(self, name: str = "worker") -> str:
        """Where worker ``name`` serves /metrics (unless the test overrode its port)."""
        return f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        asked = time.monotonic()
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self._dump_hung(name, proc, sig)
            return
        warn_if_slow_to_stop(f"stopping {name}", asked, lambda: self._last_lines(name))

    def _last_lines(self, name: str) -> str:
        return "; its last lines:\n" + "\n".join(self.log(name).splitlines()[-15:])

    def _dump_hung(self, name: str, proc: subprocess.Popen[bytes], sig: int) -> None:
        """A process that outlives the grace after ``sig`` hangs on its way out (a bug):
        SIGABRT makes it write every thread's stack to its log (PYTHONFAULTHANDLER), and
        the run's warnings summary shows where it was stuck."""
        stop_process(proc, signal.SIGABRT, grace_s=5)
        log = self.log(name)
        dumped = log.rfind("Fatal Python error: Aborted")
        stacks = log[dumped:] if dumped >= 0 else log[-4000:]
        stacks = stacks.split("\nExtension modules:")[0]
        warnings.warn(
            f"{name} was still running {STOP_GRACE_S} s after signal {sig}; its end:\n{stacks}",
            stacklevel=3,
        )

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def discard(self) -> None:
        """Stop its processes and drop its database. A suite that kept its ~200 databases
        took 10-20 s at its very end to remove their files from the test directory."""
        self.stop_all()
        if not self.database_url or os.environ.get("SYNCBUS_KEEP_TEST_DIR"):
            return
        name = self.database_url.rsplit("/", 1)[1]
        with psycopg.connect(self.postgres.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log(self, name: str) -> str:
        """What process ``name`` (its latest start) has written so far."""
        path = self.log_paths.get(name)
        return path.read_text(errors="replace") if path is not None and path.exists() else ""

    def client(self, *, admin: bool = True, timeout: float = 30) -> httpx.Client:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"} if admin else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def db(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.database_url, autocommit=True)

    def query(
        self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        with self.db() as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> int:
        """Run a statement that returns no rows; its row count."""
        with self.db() as conn:
            return conn.execute(sql, params).rowcount

    def scalar(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None
