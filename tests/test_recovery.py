"""Kill the broker (the embedded one forgets everything), start a new one: no job is lost."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from cli.processes import free_port
from tests.payloads import batch, signed
from tests.stack import SECRET, Stack, warn_if_slow
from tests.waiting import wait_for


@pytest.fixture
def own_stack(postgres: EmbeddedPostgres, workdir: Path) -> Iterator[Stack]:
    broker = EmbeddedBroker(free_port(), log_path=workdir / "recovery-broker.log").start()
    stack = Stack(postgres, broker, workdir).create()
    yield stack
    stack.discard()
    with warn_if_slow("stopping the recovery broker"):
        broker.stop()


def push(stack: Stack, words: list[str]) -> str:
    payload = batch(words)
    body, headers = signed(payload, SECRET)
    response = httpx.post(stack.push_url, content=body, headers=headers, timeout=30)
    assert response.status_code == 202, response.text
    return str(payload["requestId"])


def job_status(stack: Stack, request_id: str) -> str:
    return str(stack.scalar("SELECT status FROM sync_jobs WHERE request_id = %s", (request_id,)))


def succeeded(stack: Stack, request_id: str) -> Callable[[], bool]:
    return lambda: job_status(stack, request_id) == "succeeded"


def restart_broker(stack: Stack) -> None:
    stack.broker.stop(signal.SIGKILL)
    stack.broker.start()


def test_every_accepted_job_completes_across_broker_restarts(own_stack: Stack) -> None:
    stack = own_stack
    stack.start_worker()
    stack.start_api()
    before = push(stack, ["before-restart"])
    wait_for(lambda: job_status(stack, before) == "succeeded", timeout=30, what="first job")

    # Published to the old broker but not consumed: the broker forgets it.
    stack.stop("worker")
    in_kafka_only = push(stack, ["lost-with-broker"])
    wait_for(lambda: stack.scalar("SELECT count(*) FROM outbox") == 0, what="publish")
    assert stack.scalar(
        "SELECT published_at IS NOT NULL FROM sync_jobs WHERE request_id = %s", (in_kafka_only,)
    )
    stack.broker.stop(signal.SIGKILL)

    # Accepted while there is no broker at all: the api answers and keeps it in the outbox.
    during_outage = push(stack, ["accepted-during-outage"])
    assert job_status(stack, during_outage) == "queued"

    stack.broker.start()
    stack.start_worker()
    for request_id in (in_kafka_only, during_outage):
        wait_for(succeeded(stack, request_id), timeout=60, what=request_id)

    # The worker and the api keep running while the broker restarts under them.
    restart_broker(stack)
    after = push(stack, ["after-second-restart"])
    wait_for(lambda: job_status(stack, after) == "succeeded", timeout=90, what="job after restart")
    assert stack.scalar("SELECT count(*) FROM sync_jobs WHERE status <> 'succeeded'") == 0
    assert stack.scalar("SELECT count(*) FROM dictionary_entries") == 4
