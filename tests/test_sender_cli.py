"""``syncbus send`` as seed 004's DE sender: signs, retries through network failures, waits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.netfaults import FlakyProxy
from tests.payloads import batch, entry
from tests.stack import SECRET, Stack


def send(
    url: str, payload: dict[str, Any], tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    file = tmp_path / "payload.json"
    file.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    env = {
        **os.environ,
        "RF_SYNC_URL": url,
        "RF_SYNC_SHARED_SECRET": SECRET,
        "RF_SYNC_SOURCE": "de-ai-worker",
        "RF_SYNC_RETRIES": "4",
    }
    return subprocess.run(
        [sys.executable, "-m", "cli", "send", "--file", str(file), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_send_and_wait_succeeds(stack: Stack, tmp_path: Path) -> None:
    payload = batch(["cli-one", "cli-two"])
    result = send(stack.push_url, payload, tmp_path, "--wait")
    assert result.returncode == 0, result.stderr
    final = json.loads(result.stdout)
    assert final["status"] == "success"
    assert final["created"] == 2
    assert f"requestId={payload['requestId']}" in result.stderr


def test_send_retries_when_the_network_drops(stack: Stack, tmp_path: Path) -> None:
    payload = batch(["through-bad-network"])
    with FlakyProxy(stack.api_port, drop_first=2) as proxy:
        url = f"http://127.0.0.1:{proxy.port}/api/internal/dictionary-upserts"
        result = send(url, payload, tmp_path, "--wait")
    assert proxy.dropped == 2
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("retrying") == 2
    assert json.loads(result.stdout)["status"] == "success"
    assert (
        stack.scalar(
            "SELECT count(*) FROM sync_jobs WHERE request_id = %s", (payload["requestId"],)
        )
        == 1
    )


def test_send_gives_up_after_its_retries(stack: Stack, tmp_path: Path) -> None:
    with FlakyProxy(stack.api_port, drop_first=100) as proxy:
        url = f"http://127.0.0.1:{proxy.port}/api/internal/dictionary-upserts"
        result = send(url, batch(["never"]), tmp_path, "--retries", "1")
    assert result.returncode == 1
    assert "gave up after 2 attempts" in result.stderr


def test_wait_exits_non_zero_when_the_job_fails(stack: Stack, tmp_path: Path) -> None:
    payload = batch(entries=[entry("ok"), entry("bad", level="Z9")])
    result = send(stack.push_url, payload, tmp_path, "--wait")
    assert result.returncode == 1
    assert json.loads(result.stdout)["status"] == "failed"
    assert "entry 1: 'level'" in result.stderr


def test_file_without_request_id_gets_a_stable_one(stack: Stack, tmp_path: Path) -> None:
    payload = batch(["stable-id"])
    del payload["requestId"]
    first = send(stack.push_url, payload, tmp_path, "--wait")
    second = send(stack.push_url, payload, tmp_path)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "queued requestId=sync-" in first.stderr
    assert "replayed requestId=sync-" in second.stderr


def test_refused_push_exits_non_zero_with_the_reason(stack: Stack, tmp_path: Path) -> None:
    result = send(stack.push_url, {**batch(), "lang": "English"}, tmp_path)
    assert result.returncode == 1
    assert "HTTP 422" in result.stderr
    assert "retrying" not in result.stderr, "a 4xx is final: the sender must not retry it"


def send_text(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``syncbus send`` of a file holding ``text``, with no server behind the URL."""
    (tmp_path / "payload.json").write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "cli", "send", "--file", str(tmp_path / "payload.json")],
        env={**os.environ, "RF_SYNC_SHARED_SECRET": "x"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_unreadable_file_exits_2(tmp_path: Path) -> None:
    result = send_text("{broken", tmp_path)
    assert result.returncode == 2
    assert "cannot read" in result.stderr


def test_a_file_with_nan_or_an_infinite_number_exits_2(tmp_path: Path) -> None:
    for number, reason in (("NaN", "NaN is not JSON"), ("1e999", "1e999 is past the range")):
        entries = f'[{{"en": "x", "frequencyRank": {number}}}]'
        result = send_text(f'{{"lang": "en", "entries": {entries}}}', tmp_path)
        assert result.returncode == 2, result.stderr
        assert reason in result.stderr + result.stdout
