"""``syncbus health --all`` as a subprocess against a real database and processes: every domain
by the leader's alert rules, thresholds from the settings, exit by the worst severity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from schemas.domains import DOMAIN_RULES
from tests.cli_run import clean_env
from tests.fake_catalogues import unreachable_base_url
from tests.payloads import batch
from tests.stack import Stack
from tests.waiting import wait_for

ROW_KEYS = {"domain", "check", "status", "detail", "key", "details"}
JOB_RULES = ["job_failed", "queued_past_sla", "running_too_long"]


def health(
    database_url: str, *args: str, cwd: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """``syncbus health ARGS`` in a new terminal, with ``env`` on top."""
    return subprocess.run(
        [sys.executable, "-m", "cli", "health", *args],
        cwd=cwd,
        env=clean_env(DATABASE_URL=database_url, COLUMNS="250", **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def report(database_url: str, *args: str, cwd: Path, **env: str) -> tuple[int, dict[str, Any]]:
    """``health --all --json``: exit code and the parsed report, its shape checked."""
    result = health(database_url, "--all", "--json", *args, cwd=cwd, **env)
    assert result.stderr == "", result.stderr
    body = json.loads(result.stdout)
    assert set(body) == {"status", "thresholds", "checks"}
    assert body["status"] in ("ok", "warning", "critical")
    for row in body["checks"]:
        assert set(row) == ROW_KEYS, row
        assert row["status"] in ("ok", "warning", "critical")
        if row["status"] == "ok" or row["check"] == "database":  # the rest are the alert's
            assert row["key"] is None, row
        else:
            assert row["key"], row
    worst = max((r["status"] for r in body["checks"]), key=["ok", "warning", "critical"].index)
    assert body["status"] == worst
    assert result.returncode == {"ok": 0, "warning": 1, "critical": 2}[worst]
    return result.returncode, body


def by_check(body: dict[str, Any]) -> dict[tuple[str | None, str], dict[str, Any]]:
    rows = {(r["domain"], r["check"]): r for r in body["checks"]}
    assert len(rows) == len(body["checks"]), "one row per domain and check here"
    return rows


def not_ok(body: dict[str, Any]) -> set[tuple[str | None, str, str]]:
    return {(r["domain"], r["check"], r["status"]) for r in body["checks"] if r["status"] != "ok"}


def test_a_fresh_database_is_healthy_in_every_domain(isolated_stack: Stack, tmp_path: Path) -> None:
    url = isolated_stack.database_url

    code, body = report(url, cwd=tmp_path)

    assert code == 0 and body["status"] == "ok"
    rows = by_check(body)
    assert body["checks"][0] == {
        "domain": None, "check": "database", "status": "ok", "detail": "reachable",
        "key": None, "details": {},
    }  # fmt: skip
    assert {domain for domain, _ in rows} == {None, *DOMAIN_RULES}
    for domain, rules in DOMAIN_RULES.items():
        checks = [check for d, check in rows if d == domain]
        expected = JOB_RULES + (["schedule_missed"] if rules.pull else [])
        assert checks[: len(expected)] == expected, domain
    assert rows[("models", "models_health")]["detail"].startswith("not checked: ")
    assert rows[("dictionary", "queued_past_sla")]["detail"] == "none queued longer than 5 min"
    assert body["thresholds"] == {
        "failed_window_s": 600.0, "queued_sla_s": 300.0, "running_max_s": 1800.0,
        "schedule_grace_s": 300.0,
        "models": {"max_sync_age_hours": 25.0, "min_expected_models": 100,
                   "max_failure_rate": 20.0, "recent_syncs_to_check": 10},
    }  # fmt: skip

    table = health(url, "--all", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "syncbus health: ok" in table.stdout
    lines = table.stdout.splitlines()
    for domain in DOMAIN_RULES:
        assert any(domain in line and "job_failed" in line and "ok" in line for line in lines)

    # Without --all, seed 003's check exactly as before: no models sync yet is critical.
    plain = health(url, "--json", cwd=tmp_path)
    assert plain.returncode == 2
    seed = json.loads(plain.stdout)
    assert set(seed) == {"status", "checks"} and seed["status"] == "critical"
    assert [c["name"] for c in seed["checks"]] == [
        "database", "sync freshness", "data volume", "failure rate"
    ]  # fmt: skip


def test_a_job_queued_past_a_small_sla_is_a_warning(isolated_stack: Stack, tmp_path: Path) -> None:
    stack = isolated_stack
    stack.start_api()  # and no worker: what is sent stays queued
    with stack.client() as client:
        sent = client.post("/v1/syncs", json={"domain": "dictionary", "payload": batch(["queued"])})
    assert sent.status_code == 202, sent.text

    code, body = report(stack.database_url, cwd=tmp_path)
    assert code == 0, "the default SLA is minutes away"

    def past_sla() -> dict[str, Any] | None:
        code, body = report(stack.database_url, cwd=tmp_path, SYNCBUS_ALERT_QUEUED_SLA_S="0.5")
        return body if code == 1 else None

    body = wait_for(past_sla, timeout=30, what="the queued job to pass its SLA")
    assert not_ok(body) == {("dictionary", "queued_past_sla", "warning")}
    row = by_check(body)[("dictionary", "queued_past_sla")]
    assert row["key"] == "queued_past_sla:dictionary"
    assert row["details"] == {"domain": "dictionary", "queued": 1}
    assert row["detail"].startswith("1 dictionary sync(s) queued longer than 0.5 s")
    assert body["thresholds"]["queued_sla_s"] == 0.5
    table = health(stack.database_url, "--all", cwd=tmp_path, SYNCBUS_ALERT_QUEUED_SLA_S="0.5")
    assert table.returncode == 1
    assert "syncbus health: warning" in table.stdout
    [line] = [line for line in table.stdout.splitlines() if "queued_past_sla" in line and
              "dictionary" in line]  # fmt: skip
    assert "warning" in line

    # A models schedule late for its run: a warning in the models domain.
    with stack.client() as client:
        added = client.post(
            "/v1/schedules", json={"domain": "models", "name": "late", "interval_seconds": 60}
        )
    assert added.status_code == 201, added.text
    schedule_id = added.json()["id"]
    stack.execute(
        "UPDATE schedules SET next_run = now() - interval '1 hour' WHERE id = %s", (schedule_id,)
    )
    code, body = report(stack.database_url, cwd=tmp_path, SYNCBUS_ALERT_SCHEDULE_GRACE_S="60")
    late = ("models", "schedule_missed", "warning")
    assert late in not_ok(body)
    assert not_ok(body) <= {late, ("models", "models_health", "critical")}
    assert by_check(body)[("models", "schedule_missed")]["key"] == f"schedule_missed:{schedule_id}"
    _, body = report(stack.database_url, cwd=tmp_path, SYNCBUS_ALERT_SCHEDULE_GRACE_S="7200")
    assert late not in not_ok(body), "an hour late is within a grace of two"


@pytest.fixture
def failing(isolated_stack: Stack) -> Stack:
    """api and worker whose model sources all refuse connections: every models sync fails."""
    nowhere = unreachable_base_url()
    isolated_stack.env_overrides.update(
        {
            "MODELSDEV_BASE_URL": nowhere,
            "OPENROUTER_BASE_URL": nowhere,
            "HUGGINGFACE_BASE_URL": nowhere,
            "MODELS_SOURCE_RETRIES": "0",
        }
    )
    isolated_stack.start_worker()
    isolated_stack.start_api()
    return isolated_stack


def test_a_failed_job_is_critical(failing: Stack, tmp_path: Path) -> None:
    stack = failing
    with stack.client() as client:
        started = client.post("/v1/syncs", json={"domain": "models", "mode": "full"})
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    wait_for(
        lambda: stack.scalar("SELECT status FROM sync_jobs WHERE id = %s", (job_id,)) == "failed",
        timeout=90,
        what="the models sync to fail",
    )

    code, body = report(stack.database_url, cwd=tmp_path)

    assert code == 2
    assert not_ok(body) == {
        ("models", "job_failed", "critical"),
        ("models", "models_health", "critical"),
    }
    rows = by_check(body)
    failed = rows[("models", "job_failed")]
    assert failed["key"] == "job_failed:models"
    assert failed["details"] == {"domain": "models", "failed": 1, "latest_job": job_id}
    assert failed["detail"].startswith("1 models sync(s) failed in the last 10 min: ")
    assert "no model source succeeded" in failed["detail"]
    models = rows[("models", "models_health")]
    assert models["key"] == "models_health"
    checks = {c["name"]: c["severity"] for c in models["details"]["checks"]}
    assert checks["sync freshness"] == "critical" and checks["failure rate"] == "critical"

    # The models thresholds: SYNCBUS_HEALTH_* settings, and health's options over them.
    _, lenient = report(stack.database_url, "--max-failure-rate", "100", cwd=tmp_path)
    lenient_checks = by_check(lenient)[("models", "models_health")]["details"]["checks"]
    assert {c["name"]: c["severity"] for c in lenient_checks}["failure rate"] == "ok"
    assert lenient["thresholds"]["models"]["max_failure_rate"] == 100
    _, from_env = report(stack.database_url, cwd=tmp_path, SYNCBUS_HEALTH_MAX_FAILURE_RATE="100")
    assert from_env["thresholds"]["models"]["max_failure_rate"] == 100
    _, option_wins = report(
        stack.database_url, "--max-failure-rate", "0", cwd=tmp_path,
        SYNCBUS_HEALTH_MAX_FAILURE_RATE="100",
    )  # fmt: skip
    assert option_wins["thresholds"]["models"]["max_failure_rate"] == 0

    # The failed window: once the failure is older than it, that rule is ok again.
    def outside_window() -> dict[str, Any] | None:
        _, body = report(stack.database_url, cwd=tmp_path, SYNCBUS_ALERT_FAILED_WINDOW_S="1")
        return body if by_check(body)[("models", "job_failed")]["status"] == "ok" else None

    later = wait_for(outside_window, timeout=30, what="the failure to leave a 1 s window")
    assert not_ok(later) == {("models", "models_health", "critical")}

    table = health(stack.database_url, "--all", cwd=tmp_path)
    assert table.returncode == 2
    assert "syncbus health: critical" in table.stdout
    assert "no model source succeeded" in table.stdout


def test_an_unreachable_database_is_critical(tmp_path: Path) -> None:
    url = "postgresql://nobody@127.0.0.1:1/none"

    code, body = report(url, cwd=tmp_path)

    assert code == 2
    [row] = body["checks"]
    assert (row["domain"], row["check"], row["status"]) == (None, "database", "critical")
    assert row["detail"].startswith("cannot connect to PostgreSQL at 127.0.0.1:1 (DATABASE_URL): ")
    table = health(url, "--all", cwd=tmp_path)
    assert table.returncode == 2 and "critical" in table.stdout
