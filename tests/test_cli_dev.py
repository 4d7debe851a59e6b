"""``syncbus dev``: up in under 20 s, found by a second terminal, refuses what it cannot do in
one line before it starts anything, stops when a child dies, and is gone after Ctrl-C."""

from __future__ import annotations

import json
import signal
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from cli.devenv import dev_env_path, read_dev_env
from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from cli.processes import free_port
from tests.cli_run import Dev, clean_env, start_dev, syncbus
from tests.fake_catalogues import FakeCatalogues

BATCH = Path(__file__).resolve().parent.parent / "examples" / "dictionary-batch.json"
DEV_ENV_KEYS = {
    "DATABASE_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "SYNCBUS_URL",
    "ADMIN_API_KEY",
    "ADMIN_PIN",
    "INTERNAL_SYNC_SHARED_SECRET",
    "INTERNAL_SYNC_TOKEN",
    "INTERNAL_SYNC_SECRET",
    "RF_SYNC_URL",
    "RF_SYNC_SHARED_SECRET",
}


@pytest.fixture(scope="module")
def catalogues() -> Iterator[FakeCatalogues]:
    with FakeCatalogues() as fake:
        yield fake


@pytest.fixture(scope="module")
def pg_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def dev(
    tmp_path_factory: pytest.TempPathFactory, catalogues: FakeCatalogues, pg_port: int
) -> Iterator[Dev]:
    """One dev stack for the module, with the model catalogues served locally."""
    env = clean_env(**catalogues.settings_env())
    running = start_dev(tmp_path_factory.mktemp("dev"), env, "--pg-port", str(pg_port))
    try:
        yield running
    finally:
        running.stop()


def test_dev_is_ready_within_20s_with_every_process(dev: Dev) -> None:
    started = psutil.Process(dev.proc.pid).create_time()
    dev.wait_ready()
    assert time.time() - started < 20
    assert f"http://127.0.0.1:{dev.port}" in dev.output
    assert "dev-shared-secret" in dev.output
    names = " ".join(" ".join(c.cmdline()) for c in psutil.Process(dev.proc.pid).children())
    assert "tansu" in names and "postgres" in names
    assert "cli api" in names and "cli worker" in names
    answer = httpx.get(f"http://127.0.0.1:{dev.port}/readyz")
    assert answer.json()["status"] == "ready"


def test_dev_env_holds_what_a_second_terminal_needs(dev: Dev, pg_port: int) -> None:
    dev.wait_ready()
    path = dev.data_dir / "dev.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = read_dev_env(path)
    assert set(values) == DEV_ENV_KEYS
    assert values["SYNCBUS_URL"] == f"http://127.0.0.1:{dev.port}"
    assert values["RF_SYNC_URL"] == f"http://127.0.0.1:{dev.port}/api/internal/dictionary-upserts"
    assert values["KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{dev.kafka_port}"
    assert f"127.0.0.1:{pg_port}/" in values["DATABASE_URL"]
    assert values["ADMIN_API_KEY"] == "dev-admin-key"
    assert values["RF_SYNC_SHARED_SECRET"] == values["INTERNAL_SYNC_SHARED_SECRET"]


def test_client_commands_work_bare_in_a_second_terminal(dev: Dev) -> None:
    dev.wait_ready()
    env = clean_env()

    sent = syncbus("send", "--file", str(BATCH), "--wait", cwd=dev.cwd, env=env)
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["status"] == "success"

    triggered = syncbus("trigger", "models", "--wait", cwd=dev.cwd, env=env)
    assert triggered.returncode == 0, triggered.stderr
    assert "done" in triggered.stderr

    health = syncbus("health", "--json", "--min-models", "1", cwd=dev.cwd, env=env)
    assert health.returncode == 0, health.stdout + health.stderr
    assert json.loads(health.stdout)["status"] == "ok"

    migrated = syncbus("migrate", cwd=dev.cwd, env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert "database is up to date" in migrated.stderr


def test_the_environment_wins_and_syncbus_dev_env_names_the_file(dev: Dev, tmp_path: Path) -> None:
    dev.wait_ready()
    wrong = syncbus(
        "send", "--file", str(BATCH), cwd=dev.cwd, env=clean_env(RF_SYNC_SHARED_SECRET="wrong")
    )
    assert wrong.returncode == 1
    assert "HTTP 401" in wrong.stderr

    elsewhere = syncbus("trigger", "models", cwd=tmp_path, env=clean_env())
    assert elsewhere.returncode == 2
    assert "ADMIN_API_KEY (or --admin-key) is required" in elsewhere.stderr

    named = clean_env(SYNCBUS_DEV_ENV=str(dev.data_dir / "dev.env"))
    assert dev_env_path(named) == dev.data_dir / "dev.env"
    health = syncbus("health", "--json", "--min-models", "1", cwd=tmp_path, env=named)
    checks = {c["name"]: c["severity"] for c in json.loads(health.stdout)["checks"]}
    assert checks["database"] == "ok"


def test_a_second_dev_in_the_same_dir_says_so_in_one_line(dev: Dev) -> None:
    dev.wait_ready()
    second = start_dev(dev.cwd, clean_env())
    assert second.wait(30) == 2
    assert second.lines == [f"another syncbus dev (pid {dev.proc.pid}) is using {dev.data_dir}\n"]
    assert (dev.data_dir / "dev.env").exists()
    assert httpx.get(f"http://127.0.0.1:{dev.port}/readyz").status_code == 200


def test_taken_ports_are_refused_before_anything_starts(
    dev: Dev, pg_port: int, tmp_path: Path
) -> None:
    dev.wait_ready()
    cases = [
        ({"port": dev.port}, (), f"port {dev.port} is in use: choose another with --port"),
        (
            {"kafka_port": dev.kafka_port},
            (),
            f"port {dev.kafka_port} is in use: choose another with --kafka-port",
        ),
        (
            {},
            ("--pg-port", str(pg_port)),
            f"port {pg_port} is in use: choose another with --pg-port",
        ),
    ]
    for index, (ports, args, line) in enumerate(cases):
        cwd = tmp_path / str(index)
        cwd.mkdir()
        refused = start_dev(cwd, clean_env(), *args, **ports)
        assert refused.wait(30) == 2
        assert refused.lines == [line + "\n"]
        assert not (cwd / ".syncbus" / "pg").exists()


def test_a_port_held_by_another_program_is_refused(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        refused = start_dev(tmp_path, clean_env(), port=port)
        assert refused.wait(30) == 2
    assert refused.lines == [f"port {port} is in use: choose another with --port\n"]
    assert "ready" not in refused.output


@pytest.mark.parametrize(("name", "fragment"), [("worker", "cli worker"), ("broker", "tansu")])
def test_a_child_that_dies_stops_dev_with_one_line(
    tmp_path: Path, name: str, fragment: str
) -> None:
    dev = start_dev(tmp_path, clean_env())
    try:
        dev.wait_ready()
        others = psutil.Process(dev.proc.pid).children()
        victim = dev.child(fragment)
        victim.kill()
        assert dev.wait() == 1
    finally:
        dev.stop()
    log = tmp_path / ".syncbus" / f"{name}.log"
    assert f"{name} was killed by SIGKILL (log: {log})\n" in dev.lines
    _gone, alive = psutil.wait_procs(others, timeout=10)
    assert alive == [], f"left behind: {[p.cmdline() for p in alive]}"
    assert not (tmp_path / ".syncbus" / "dev.env").exists()


def test_dev_uses_given_broker_and_database(
    tmp_path: Path, broker: EmbeddedBroker, postgres: EmbeddedPostgres
) -> None:
    env = clean_env(
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
        DATABASE_URL=postgres.create_database("dev_external"),
        SYNCBUS_TOPIC_PREFIX="devext.",
    )
    dev = start_dev(tmp_path, env)
    try:
        dev.wait_ready()
        assert broker.bootstrap in dev.output
        names = " ".join(" ".join(c.cmdline()) for c in psutil.Process(dev.proc.pid).children())
        assert "tansu" not in names and "bin/postgres" not in names
        assert httpx.get(f"http://127.0.0.1:{dev.port}/readyz").status_code == 200
        values = read_dev_env(dev.data_dir / "dev.env")
        assert values["KAFKA_BOOTSTRAP_SERVERS"] == broker.bootstrap
        assert values["DATABASE_URL"] == env["DATABASE_URL"]
    finally:
        dev.proc.send_signal(signal.SIGTERM)
        assert dev.wait() == 0


def test_ctrl_c_stops_everything_and_removes_dev_env(dev: Dev) -> None:
    """Last in the module: it stops the shared dev stack."""
    dev.wait_ready()
    children = psutil.Process(dev.proc.pid).children(recursive=True)
    assert dev.stop() == 0
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], f"left behind: {[p.pid for p in alive]}"
    assert "stopped" in dev.output
    assert not (dev.data_dir / "dev.env").exists()
