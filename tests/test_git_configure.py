"""Seed 002's schedule configuration: stored in app_settings, winning over the environment,
followed at once by the git domain's schedule (next_run says so), and fired by the leader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.git_stack import add_release, client, configure, module_source, repository
from tests.stack import Stack
from tests.waiting import wait_for


@pytest.fixture
def timed(isolated_stack: Stack, tmp_path: Path) -> Stack:
    remote = repository(tmp_path / "remote", {"tests/test_x.py": module_source("test_x")})
    configure(
        isolated_stack,
        remote.url,
        tmp_path,
        METADATA_SYNC_ENABLED="false",
        METADATA_SYNC_INTERVAL_HOURS="24.0",
        SYNCBUS_SCHEDULER_TICK_S="0.2",
        SYNCBUS_LEADER_POLL_S="0.5",
    )
    isolated_stack.start_worker()
    isolated_stack.start_api()
    return isolated_stack


def seed_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_configure_is_stored_wins_over_the_environment_and_moves_the_schedule(
    timed: Stack,
) -> None:
    with client(timed) as http:
        status = http.get("/metadata-sync/status").json()
        assert status == {
            "enabled": False,
            "interval_hours": 24.0,
            "next_run": None,
            "last_sync": None,
        }
        answer = http.post(
            "/metadata-sync/configure", json={"enabled": True, "interval_hours": 12.0}
        )
        assert answer.status_code == 200
        assert answer.json() == {"message": "Configuration updated successfully"}
        status = http.get("/metadata-sync/status").json()
    assert (status["enabled"], status["interval_hours"]) == (True, 12.0)
    next_run = seed_time(status["next_run"])
    expected = datetime.now(UTC) + timedelta(hours=12)
    assert abs((next_run - expected).total_seconds()) < 60
    stored = dict(timed.query("SELECT key, value FROM app_settings"))
    assert stored == {"METADATA_SYNC_ENABLED": True, "METADATA_SYNC_INTERVAL_HOURS": 12.0}
    schedule = timed.query(
        "SELECT interval_seconds, enabled, mode, origin FROM schedules WHERE domain = 'git'"
    )
    assert schedule == [(12 * 3600, True, "incremental", "api")]

    # A restart with the environment still saying "off, every 24 h" keeps the stored values.
    timed.stop("worker")
    timed.stop("api")
    timed.start_worker()
    timed.start_api()
    wait_for(lambda: "this worker leads" in timed.log("worker"), what="a leader")
    with client(timed) as http:
        status = http.get("/metadata-sync/status").json()
        assert (status["enabled"], status["interval_hours"]) == (True, 12.0)
        assert http.post("/metadata-sync/configure", json={"enabled": False}).status_code == 200
        status = http.get("/metadata-sync/status").json()
        assert (status["enabled"], status["next_run"]) == (False, None)
        assert http.post("/metadata-sync/configure", json={}).status_code == 422
        assert http.post("/metadata-sync/configure", json={"interval_hours": 0}).status_code == 422


def test_the_schedule_fires_a_scheduled_sync_of_every_release(timed: Stack) -> None:
    release = add_release(timed, "7.0.0.0", "main")
    with client(timed) as http:
        http.post("/metadata-sync/configure", json={"enabled": True, "interval_hours": 1.0})
    timed.execute("UPDATE schedules SET next_run = now() WHERE domain = 'git'")

    def finished() -> list[dict[str, Any]]:
        with client(timed) as http:
            logs = http.get("/metadata-sync/history").json()
        return [e for e in logs if e["status"] != "running"]

    (entry,) = wait_for(finished, timeout=60, what="the scheduled sync")
    assert (entry["sync_type"], entry["status"], entry["tests_added"]) == (
        "scheduled",
        "success",
        1,
    )
    assert entry["releases"][0]["release_id"] == release
    with client(timed) as http:  # the seed sets no maximum: a larger limit answers 1000
        assert http.get("/metadata-sync/history", params={"limit": 5000}).json() == [entry]
        assert http.get("/metadata-sync/history", params={"limit": 0}).status_code == 422
