"""The operators' commands (topics, tail, replay, inspect) run as a new terminal would run them."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer

from tests.cli_run import clean_env, syncbus
from tests.payloads import batch, signed
from tests.stack import SECRET, Stack
from tests.waiting import wait_for


def stack_env(stack: Stack, **extra: str) -> dict[str, str]:
    """A clean terminal pointed at ``stack``: its broker, database and topic prefix."""
    own = {k: stack.env[k] for k in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
    return clean_env(**own, SYNCBUS_TOPIC_PREFIX=stack.env["SYNCBUS_TOPIC_PREFIX"], **extra)


def run(
    stack: Stack, *args: str, cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return syncbus(*args, cwd=cwd, env=stack_env(stack), timeout=timeout)


def prefix(stack: Stack) -> str:
    return stack.env["SYNCBUS_TOPIC_PREFIX"]


def push_batch(stack: Stack, words: list[str], *, status: str = "succeeded") -> tuple[str, str]:
    """Push a dictionary batch over HTTP and wait for its job; (request id, job id)."""
    payload = batch(words, request_id=f"cli-{uuid.uuid4()}")
    body, headers = signed(payload, SECRET)
    response = httpx.post(stack.push_url, content=body, headers=headers, timeout=30)
    assert response.status_code == 202, response.text
    request_id = str(payload["requestId"])
    query = "SELECT id, status FROM sync_jobs WHERE request_id = %s"
    row = wait_for(
        lambda: next(
            (r for r in stack.query(query, (request_id,)) if r[1] in ("succeeded", "failed")), None
        ),
        timeout=60,
        what=f"job {request_id} to finish",
    )
    assert row[1] == status, row
    return request_id, str(row[0])


def produce(stack: Stack, topic: str, value: bytes, **kwargs: Any) -> None:
    """One raw message, acknowledged (headers, key, partition and timestamp as given)."""
    producer = Producer({"bootstrap.servers": stack.broker.bootstrap, "log_level": 2})
    errors: list[object] = []
    producer.produce(topic, value, on_delivery=lambda err, _m: errors.append(err), **kwargs)
    assert producer.flush(15) == 0
    assert errors == [None], errors


@dataclass
class Running:
    """A command left running (``tail --follow``), its stdout collected line by line."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def wait_line(self, fragment: str, timeout: float = 30) -> str:
        def found() -> str | None:
            assert self.proc.poll() is None or any(fragment in x for x in self.lines), (
                self.proc.returncode,
                self.lines,
            )
            return next((line for line in self.lines if fragment in line), None)

        return wait_for(found, timeout=timeout, what=f"a line with {fragment!r}")


def start(stack: Stack, *args: str, cwd: Path) -> Running:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd,
        env=stack_env(stack),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = Running(proc)

    def collect() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            running.lines.append(line)

    threading.Thread(target=collect, daemon=True).start()
    return running
