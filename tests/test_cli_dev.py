"""``syncbus dev``: everything up in under 20 s, usable, and gone after Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from cli.processes import free_port
from producers.sender import DictionarySender
from tests.payloads import batch
from tests.waiting import wait_for


def start_dev(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str], int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli",
            "dev",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "d"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []

    def collect() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)

    threading.Thread(target=collect, daemon=True).start()
    return proc, lines, port


def clean_env() -> dict[str, str]:
    drop = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "ADMIN_", "INTERNAL_SYNC_", "SYNCBUS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**env, "COLUMNS": "200"}


def test_dev_starts_everything_serves_a_push_and_stops_cleanly(tmp_path: Path) -> None:
    started = time.monotonic()
    proc, lines, port = start_dev(tmp_path, clean_env())
    try:
        wait_for(
            lambda: any("syncbus is ready" in line for line in lines),
            timeout=20,
            what="syncbus dev to be ready",
        )
        ready_after = time.monotonic() - started
        assert ready_after < 20
        output = "".join(lines)
        assert f"http://127.0.0.1:{port}" in output
        assert "dev-shared-secret" in output

        children = psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "tansu" in names and "postgres" in names
        assert "cli api" in names and "cli worker" in names

        sender = DictionarySender(
            url=f"http://127.0.0.1:{port}/api/internal/dictionary-upserts",
            secret="dev-shared-secret",
        )
        payload = sender.prepare(batch(["dev-mode"]))
        sender.push(payload)
        assert sender.wait(payload["requestId"], timeout_s=30, poll_s=0.2)["status"] == "success"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], f"left behind: {[p.pid for p in alive]}"
    assert "stopped" in "".join(lines)


def test_dev_uses_given_broker_and_database(
    tmp_path: Path, broker: EmbeddedBroker, postgres: EmbeddedPostgres
) -> None:
    env = {
        **clean_env(),
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "DATABASE_URL": postgres.create_database("dev_external"),
        "SYNCBUS_TOPIC_PREFIX": "devext.",
    }
    proc, lines, port = start_dev(tmp_path, env)
    try:
        wait_for(
            lambda: any("syncbus is ready" in line for line in lines),
            timeout=20,
            what="syncbus dev to be ready",
        )
        assert broker.bootstrap in "".join(lines)
        children = psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "tansu" not in names and "bin/postgres" not in names
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
