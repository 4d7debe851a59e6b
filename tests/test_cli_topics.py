"""``syncbus topics``: partitions, end offsets and consumer lag, read with standard Kafka calls."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from cli.processes import free_port
from tests.cli_kafka import prefix, push_batch, run, stack_env
from tests.cli_run import clean_env, syncbus
from tests.payloads import batch, signed
from tests.stack import SECRET, Stack
from tests.waiting import wait_for


def report(stack: Stack, cwd: Path) -> dict[str, Any]:
    result = run(stack, "topics", "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def report_when(
    stack: Stack, cwd: Path, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body = report(stack, cwd)
        return body if condition(body) else None

    return wait_for(probe, what="syncbus topics to report it")


def messages(body: dict[str, Any], topic: str) -> int:
    (found,) = [t for t in body["topics"] if t["topic"] == topic]
    return sum(p["high"] - p["low"] for p in found["partitions"])


def worker_lag(body: dict[str, Any], group: str, topic: str) -> int | None:
    lags = [g["lag"] for g in body["groups"] if g["group"] == group and g["topic"] == topic]
    return lags[0] if lags else None


def test_end_offsets_and_lag_follow_pushes(isolated_stack: Stack, tmp_path: Path) -> None:
    stack = isolated_stack
    stack.start_worker()
    stack.start_api()
    requests = f"{prefix(stack)}requests.dictionary"
    group = f"{prefix(stack)}worker"

    push_batch(stack, ["lag-1"])
    body = report_when(stack, tmp_path, lambda b: worker_lag(b, group, requests) == 0)
    assert messages(body, requests) == 1
    assert {t["topic"] for t in body["topics"]} >= {requests, f"{prefix(stack)}dlq"}
    # Every progress event is on the topic: the embedded broker's ListOffsets alone would
    # count a batch of several events as one (its end is the last batch's base offset + 1).
    events = stack.scalar("SELECT count(*) FROM sync_events")
    assert events > 1
    assert messages(body, f"{prefix(stack)}progress") == events

    stack.stop("worker")
    pushed, headers = signed(batch(["lag-2"]), SECRET)  # queued: no worker takes it
    assert httpx.post(stack.push_url, content=pushed, headers=headers).status_code == 202
    later = report_when(stack, tmp_path, lambda b: messages(b, requests) == 2)
    assert worker_lag(later, group, requests) == 1

    table = run(stack, "topics", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert requests in table.stdout and group in table.stdout


def test_client_commands_read_the_dev_stack_file(stack: Stack, tmp_path: Path) -> None:
    own = stack_env(stack)
    dev_env = tmp_path / ".syncbus" / "dev.env"
    dev_env.parent.mkdir()
    names = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "SYNCBUS_TOPIC_PREFIX")
    dev_env.write_text("".join(f"{name}={own[name]}\n" for name in names))

    result = syncbus("topics", "--json", cwd=tmp_path, env=clean_env())

    assert result.returncode == 0, result.stderr
    assert f"{prefix(stack)}progress" in {t["topic"] for t in json.loads(result.stdout)["topics"]}


def test_an_unreachable_broker_is_one_line_and_exit_2(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"

    result = syncbus("topics", cwd=tmp_path, env=clean_env(KAFKA_BOOTSTRAP_SERVERS=address))

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"cannot reach the Kafka broker at {address} ")
    assert result.stderr.count("\n") == 1, result.stderr
