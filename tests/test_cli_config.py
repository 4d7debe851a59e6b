"""A misconfigured command says what is wrong in one line and exits 2: no traceback, no secret."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cli.processes import free_port
from tests.cli_run import captured as syncbus
from tests.cli_run import clean_env
from tests.waiting import wait_for


def test_migrate_without_a_database_names_it_and_the_variable(tmp_path: Path) -> None:
    port = free_port()
    result = syncbus(
        "migrate", cwd=tmp_path, DATABASE_URL=f"postgresql://syncbus:pa55word@127.0.0.1:{port}/x"
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"cannot connect to PostgreSQL at 127.0.0.1:{port} (DATABASE_URL): connection refused\n"
    )
    assert result.stdout == ""
    assert "pa55word" not in result.stderr


@pytest.mark.parametrize("url", ["mysql://root:pa55word@db/x", "postgresql://u:pa55word@h:x/db"])
def test_migrate_with_a_url_that_is_not_postgresql_says_so(tmp_path: Path, url: str) -> None:
    result = syncbus("migrate", cwd=tmp_path, DATABASE_URL=url)
    assert result.returncode == 2
    assert result.stderr == (
        "DATABASE_URL is not a PostgreSQL URL (postgresql://user@host:port/database)\n"
    )


@pytest.mark.parametrize("command", ["api", "worker", "migrate", "health", "dev"])
def test_an_invalid_setting_is_one_line_for_every_command(tmp_path: Path, command: str) -> None:
    result = syncbus(command, cwd=tmp_path, SYNCBUS_TOPIC_PARTITIONS="0")
    assert result.returncode == 2
    assert result.stderr == (
        "invalid SYNCBUS_TOPIC_PARTITIONS: input should be greater than or equal to 1\n"
    )
    assert not (tmp_path / ".syncbus").exists()  # dev started nothing


def test_the_invalid_value_itself_is_not_printed(tmp_path: Path) -> None:
    result = syncbus(
        "migrate", cwd=tmp_path, INTERNAL_SYNC_ALLOWED_SKEW_SECONDS="hunter2-not-a-number"
    )
    assert result.returncode == 2
    assert result.stderr.startswith("invalid INTERNAL_SYNC_ALLOWED_SKEW_SECONDS: input should be")
    assert "hunter2" not in result.stderr + result.stdout


def test_a_malformed_allowlist_entry_is_named_once(tmp_path: Path) -> None:
    result = syncbus("api", cwd=tmp_path, INTERNAL_SYNC_ALLOWED_IPS="10.0.0.1,not-an-ip")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("invalid INTERNAL_SYNC_ALLOWED_IPS: 'not-an-ip' ")


@pytest.mark.parametrize("command", ["api", "worker"])
def test_without_database_and_broker_a_process_says_so_once_then_retries_quietly(
    tmp_path: Path, command: str
) -> None:
    """Each dependency is named once; retries add at most a line a minute (producers.quiet).
    The api's releases file waits for PostgreSQL too, without a traceback."""
    api_port = free_port()
    args = [command] + (["--port", str(api_port)] if command == "api" else [])
    releases = tmp_path / "releases.yaml"
    releases.write_text("releases:\n  - name: 7.0.0.0\n")
    env = clean_env(
        DATABASE_URL=f"postgresql://syncbus:pa55word@127.0.0.1:{free_port()}/x",
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
        SYNCBUS_RELEASES_FILE=str(releases),
    )
    log = tmp_path / "out.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", *args], cwd=tmp_path, env=env, stdout=out, stderr=out
        )
    try:
        # The retry loops run every 0.5-1 s: watch them for a while, and fail the moment the
        # log grows past a handful of lines.
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            lines = log.read_text(errors="replace").splitlines()
            assert len(lines) <= 12, "\n".join(lines)
            assert proc.poll() is None, "\n".join(lines)
            time.sleep(0.5)
        if command == "api":  # serving while the releases file waits for the database
            ready = wait_for(lambda: readyz(api_port), timeout=60, what="the api to answer /readyz")
            checks = ready.json()["checks"]
            assert checks == {
                "database": "unreachable",
                "broker": "unreachable",
                "config_files": "loading",
            }
    finally:
        proc.terminate()
        proc.wait(20)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and "pa55word" not in text
    assert "KAFKA_BOOTSTRAP_SERVERS" in text or "broker" in text
    assert "%3|" not in text, "librdkafka's own connection errors stay quiet"


def readyz(port: int) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
    except httpx.TransportError:  # not listening yet
        return None
