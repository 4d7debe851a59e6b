"""Session services: the embedded broker and PostgreSQL over TCP, and a running syncbus."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.embedded import EmbeddedBroker, EmbeddedPostgres, remove_tree
from cli.processes import free_port
from tests.stack import Stack, warn_if_slow

# A service that cannot start fails the run (CI sets CI=true); nothing here ever skips.
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="syncbus-tests-"))
    yield path
    if os.environ.get("SYNCBUS_KEEP_TEST_DIR"):
        print(f"test logs kept in {path}")
    else:
        with warn_if_slow(f"removing {path}"):
            remove_tree(path)


@pytest.fixture(scope="session")
def postgres(workdir: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(workdir / "pg", free_port(), durable=False).start()
    yield server
    with warn_if_slow("stopping the session's PostgreSQL"):
        server.stop()


@pytest.fixture(scope="session")
def broker(workdir: Path) -> Iterator[EmbeddedBroker]:
    server = EmbeddedBroker(free_port(), log_path=workdir / "broker.log").start()
    yield server
    with warn_if_slow("stopping the session's broker"):
        server.stop()


@pytest.fixture(scope="session")
def stack(postgres: EmbeddedPostgres, broker: EmbeddedBroker, workdir: Path) -> Iterator[Stack]:
    """The shared running service: api and one worker."""
    running = Stack(postgres, broker, workdir).create()
    running.start_worker()
    running.start_api()
    yield running
    running.stop_all()


@pytest.fixture
def isolated_stack(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker, workdir: Path
) -> Iterator[Stack]:
    """A fresh database and topic prefix; the test starts the processes it needs."""
    running = Stack(postgres, broker, workdir).create()
    yield running
    running.discard()


@pytest.fixture
def own_postgres(workdir: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of the test's own, for faults that would hit every other test."""
    path = Path(tempfile.mkdtemp(prefix="pg-", dir=workdir))
    server = EmbeddedPostgres(path, free_port(), durable=False).start()
    yield server
    server.stop()
    if not os.environ.get("SYNCBUS_KEEP_TEST_DIR"):
        remove_tree(path)


@pytest.fixture
def own_broker(workdir: Path) -> Iterator[EmbeddedBroker]:
    """A broker of the test's own, to kill and restart empty."""
    log_path = Path(tempfile.mkstemp(prefix="broker-", suffix=".log", dir=workdir)[1])
    server = EmbeddedBroker(free_port(), log_path=log_path).start()
    yield server
    server.stop()
