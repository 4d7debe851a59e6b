"""``syncbus schedules`` run as a subprocess against the real api and worker, sources served
locally: each subcommand, names as ids, refusals as one line, run --wait to the end."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import typer
from croniter import croniter
from typer.core import TyperGroup

from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from cli.main import app
from cli.schedule_api import parse_every
from tests.cli_run import clean_env
from tests.fake_catalogues import PATHS, FakeCatalogues
from tests.stack import ADMIN_KEY, Stack
from tests.waiting import wait_for

FAR = "0 2 * * *"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def catalogues() -> Iterator[FakeCatalogues]:
    with FakeCatalogues() as fake:
        yield fake


@pytest.fixture(scope="module")
def sched(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker, workdir: Path, catalogues: FakeCatalogues
) -> Iterator[Stack]:
    """api and worker on a database of their own, no configured schedule, fast ticks."""
    stack = Stack(postgres, broker, workdir)
    stack.env_overrides.update(
        {
            **catalogues.settings_env(),
            "MODELS_SYNC_CRON": "",
            "SYNCBUS_SCHEDULER_TICK_S": "0.2",
            "MODELS_SOURCE_TIMEOUT_S": "60",
            "MODELS_SOURCE_RETRIES": "0",
        }
    )
    stack.create()
    stack.start_worker()
    stack.start_api()
    yield stack
    stack.discard()


@pytest.fixture(autouse=True)
def fresh_catalogues(catalogues: FakeCatalogues) -> None:
    catalogues.reset()


def syncbus(
    stack: Stack, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``syncbus schedules ARGS`` in a new terminal pointed at ``stack``."""
    environ = clean_env(SYNCBUS_URL=stack.url, ADMIN_API_KEY=ADMIN_KEY, COLUMNS="300")
    return subprocess.run(
        [sys.executable, "-m", "cli", "schedules", *args],
        cwd=cwd,
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def api_add(stack: Stack, name: str, **body: Any) -> dict[str, Any]:
    body = {"domain": "models", "name": name, **body}
    if "cron" not in body and "interval_seconds" not in body:
        body["cron"] = FAR
    with stack.client() as client:
        response = client.post("/v1/schedules", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def api_get(stack: Stack, schedule_id: str) -> httpx.Response:
    with stack.client() as client:
        return client.get(f"/v1/schedules/{schedule_id}")


def api_all(stack: Stack) -> list[dict[str, Any]]:
    with stack.client() as client:
        return list(client.get("/v1/schedules").json()["items"])


def created_id(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("created "), result.stdout
    found = UUID.search(result.stdout)
    assert found is not None, result.stdout
    return found[0]


def shown(when: str | None) -> str:
    assert when is not None
    return datetime.fromisoformat(when).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def test_add_with_cron_and_time_zone_prints_its_next_run(sched: Stack, tmp_path: Path) -> None:
    result = syncbus(
        sched, "add", "mornings", "--domain", "models", "--cron", "30 6 * * 1-5",
        "--timezone", "Europe/Berlin", cwd=tmp_path,
    )  # fmt: skip
    stored = api_get(sched, created_id(result)).json()
    assert (stored["cron"], stored["timezone"], stored["interval_seconds"]) == (
        "30 6 * * 1-5", "Europe/Berlin", None
    )  # fmt: skip
    assert (stored["domain"], stored["scope"], stored["mode"], stored["enabled"]) == (
        "models", "default", "full", True
    )  # fmt: skip
    berlin = croniter("30 6 * * 1-5", datetime.now(ZoneInfo("Europe/Berlin"))).get_next(datetime)
    assert datetime.fromisoformat(stored["next_run"]) == berlin
    line = result.stdout.strip()
    assert line.startswith("created models/default/mornings"), line
    assert "cron 30 6 * * 1-5 (Europe/Berlin)" in line and "enabled" in line
    assert line.endswith(f"next run {shown(stored['next_run'])}"), line


@pytest.mark.parametrize(
    ("every", "seconds"), [("90s", 90), ("15m", 900), ("15min", 900), ("2h", 7200), ("1d", 86400)]
)
def test_every_parses_into_seconds(every: str, seconds: int) -> None:
    assert parse_every(every) == seconds


def test_add_with_every_params_and_disabled(sched: Stack, tmp_path: Path) -> None:
    started = datetime.now(UTC)
    result = syncbus(
        sched, "add", "quarter-hourly", "--domain", "models", "--every", "15m", cwd=tmp_path
    )
    stored = api_get(sched, created_id(result)).json()
    assert (stored["cron"], stored["interval_seconds"], stored["enabled"]) == (None, 900, True)
    next_run = datetime.fromisoformat(stored["next_run"])
    assert timedelta(minutes=14) < next_run - started <= timedelta(minutes=16)
    assert "every 15 min" in result.stdout
    assert result.stdout.strip().endswith(f"next run {shown(stored['next_run'])}")

    paused = syncbus(
        sched, "add", "daily-paused", "--domain", "models", "--every", "1d",
        "--param", "limit=5", "--param", "label=nightly", "--disabled", cwd=tmp_path,
    )  # fmt: skip
    stored = api_get(sched, created_id(paused)).json()
    assert (stored["interval_seconds"], stored["enabled"], stored["next_run"]) == (
        86400, False, None
    )  # fmt: skip
    assert stored["params"] == {"limit": 5, "label": "nightly"}
    assert "every 24 h, paused, next run -" in paused.stdout


def test_list_shows_a_table_and_the_apis_json(sched: Stack, tmp_path: Path) -> None:
    cron = api_add(sched, "list-cron", cron="15 3 * * *")
    every = api_add(sched, "list-every", interval_seconds=90, enabled=False)

    table = syncbus(sched, "list", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    rows = {row["id"]: line for row in (cron, every) for line in table.stdout.splitlines()
            if row["id"] in line}  # fmt: skip
    assert set(rows) == {cron["id"], every["id"]}, table.stdout
    for header in ("name", "domain/scope", "mode", "timer", "enabled", "next run", "last status"):
        assert header in table.stdout
    cells = [c.strip() for c in re.split(r"[│|]", rows[cron["id"]]) if c.strip()]
    assert cells == [
        "list-cron", "models/default", "full", "cron 15 3 * * * (UTC)", "yes",
        shown(cron["next_run"]), "-", "-", cron["id"],
    ]  # fmt: skip
    cells = [c.strip() for c in re.split(r"[│|]", rows[every["id"]]) if c.strip()]
    assert cells[3:6] == ["every 90 s", "no", "-"]

    as_json = syncbus(sched, "list", "--json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {"items": api_all(sched)}
    none = syncbus(sched, "list", "--json", "--domain", "dictionary", cwd=tmp_path)
    assert json.loads(none.stdout) == {"items": []}


def test_pause_and_resume_change_enabled_and_next_run(sched: Stack, tmp_path: Path) -> None:
    schedule = api_add(sched, "pausable", interval_seconds=3600)

    paused = syncbus(sched, "pause", schedule["id"], cwd=tmp_path)
    assert paused.returncode == 0, paused.stderr
    after = api_get(sched, schedule["id"]).json()
    assert (after["enabled"], after["next_run"]) == (False, None)
    assert (
        paused.stdout.startswith("paused models/default/pausable") and "next run -" in paused.stdout
    )

    before_resume = datetime.now(UTC)
    resumed = syncbus(sched, "resume", schedule["id"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    after = api_get(sched, schedule["id"]).json()
    assert after["enabled"] is True
    next_run = datetime.fromisoformat(after["next_run"])
    assert timedelta(minutes=59) < next_run - before_resume <= timedelta(minutes=61)
    assert resumed.stdout.strip().endswith(f"next run {shown(after['next_run'])}")


def test_a_unique_name_works_as_the_id_and_rm_deletes(sched: Stack, tmp_path: Path) -> None:
    schedule = api_add(sched, "by-name")

    assert syncbus(sched, "pause", "by-name", cwd=tmp_path).returncode == 0
    assert api_get(sched, schedule["id"]).json()["enabled"] is False

    removed = syncbus(sched, "rm", "by-name", cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == f"deleted models/default/by-name {schedule['id']}"
    assert api_get(sched, schedule["id"]).status_code == 404

    again = syncbus(sched, "rm", "by-name", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.splitlines() == ["no schedule has the id or name 'by-name'"]
    by_id = syncbus(sched, "rm", schedule["id"], cwd=tmp_path)
    assert by_id.returncode == 2
    assert by_id.stderr.splitlines() == [f"HTTP 404: schedule {schedule['id']} not found"]


def test_an_ambiguous_name_is_refused_with_its_matches(sched: Stack, tmp_path: Path) -> None:
    eu = api_add(sched, "twin", scope="eu")
    us = api_add(sched, "twin", scope="us")

    result = syncbus(sched, "pause", "twin", cwd=tmp_path)

    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "'twin' is ambiguous: 2 schedules have that name; give the id"
    assert sorted(line.split() for line in lines[1:]) == sorted(
        [[eu["id"], "models/eu/twin"], [us["id"], "models/us/twin"]]
    )
    assert api_get(sched, eu["id"]).json()["enabled"] is True
    assert api_get(sched, us["id"]).json()["enabled"] is True


@pytest.mark.parametrize(
    ("timer", "message"),
    [
        (["--every", "15x"], "invalid --every '15x': give a whole number and a unit"),
        (["--every", "0s"], "invalid --every '0s'"),
        (["--every", "soon"], "invalid --every 'soon'"),
        (["--cron", FAR, "--every", "1h"], "give exactly one of --cron and --every"),
        ([], "give exactly one of --cron and --every"),
        (["--every", "1h", "--timezone", "UTC"], "--timezone applies to --cron only"),
        (["--cron", FAR, "--param", "novalue"], "invalid --param 'novalue': give KEY=VALUE"),
    ],
)
def test_option_mistakes_are_one_line_and_exit_2(
    sched: Stack, tmp_path: Path, timer: list[str], message: str
) -> None:
    result = syncbus(sched, "add", "mistaken", "--domain", "models", *timer, cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert "mistaken" not in {s["name"] for s in api_all(sched)}


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["add", "pushed", "--domain", "dictionary", "--cron", FAR],
            "HTTP 422: domain: 'dictionary' is a push domain: its requests carry their data; "
            "schedulable: git, models, saas",
        ),
        (["add", "bad-cron", "--domain", "models", "--cron", "61 * * * *"], "HTTP 422: "),
        (
            ["add", "bad-zone", "--domain", "models", "--cron", FAR, "--timezone", "Mars/X"],
            "HTTP 422: ",
        ),
        (["add", "too-long", "--domain", "models", "--every", "400d"], "HTTP 422: "),
        (["list"], "HTTP 401: "),
    ],
)
def test_api_refusals_are_one_line_with_the_detail_and_exit_2(
    sched: Stack, tmp_path: Path, args: list[str], line: str
) -> None:
    env = {"ADMIN_API_KEY": "wrong-key"} if line == "HTTP 401: " else None
    result = syncbus(sched, *args, cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(line), result.stderr
    assert result.stdout == ""


def test_unreachable_api_and_missing_key_exit_2(sched: Stack, tmp_path: Path) -> None:
    nowhere = syncbus(sched, "list", "--url", "http://127.0.0.1:1", cwd=tmp_path)
    assert nowhere.returncode == 2
    assert nowhere.stderr.startswith("cannot reach http://127.0.0.1:1: ")
    keyless = syncbus(sched, "list", cwd=tmp_path, env={"ADMIN_API_KEY": ""})
    assert keyless.returncode == 2
    assert keyless.stderr.splitlines() == ["ADMIN_API_KEY (or --admin-key) is required"]


def scheduled_jobs(stack: Stack, schedule_id: str) -> list[tuple[Any, ...]]:
    return stack.query(
        "SELECT id::text, status, trigger FROM sync_jobs WHERE request_id LIKE %s "
        "ORDER BY created_at",
        (f"schedule:{schedule_id}:run:%",),
    )


def test_run_wait_follows_a_real_models_sync_to_done(sched: Stack, tmp_path: Path) -> None:
    schedule = api_add(sched, "run-now")

    result = syncbus(sched, "run", "run-now", "--wait", cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    [(job_id, status, trigger)] = scheduled_jobs(sched, schedule["id"])
    assert (status, trigger) == ("succeeded", "schedule")
    lines = result.stderr.splitlines()
    assert lines[0] == f"started models sync {job_id} from schedule models/default/run-now"
    assert any(line.startswith("Fetching models.dev") for line in lines[1:-1]), result.stderr
    assert lines[-1].startswith("done {") and "'created'" in lines[-1], result.stderr
    after = api_get(sched, schedule["id"]).json()
    assert (after["last_job_id"], after["last_status"]) == (job_id, "succeeded")
    assert after["next_run"] == schedule["next_run"], "running now leaves the timer alone"


def test_run_wait_exits_1_when_the_sync_fails(
    sched: Stack, tmp_path: Path, catalogues: FakeCatalogues
) -> None:
    schedule = api_add(sched, "run-failing")
    for source in PATHS:
        catalogues.disappear(source)

    result = syncbus(sched, "run", schedule["id"], "--wait", cwd=tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert [s for _, s, _ in scheduled_jobs(sched, schedule["id"])] == ["failed"]
    assert result.stderr.splitlines()[-1] == "sync failed", result.stderr


def test_run_while_the_last_job_is_active_is_refused(
    sched: Stack, tmp_path: Path, catalogues: FakeCatalogues
) -> None:
    schedule = api_add(sched, "run-busy")
    catalogues.delay("modelsdev", 60)

    first = syncbus(sched, "run", "run-busy", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stderr.startswith("started models sync ")
    second = syncbus(sched, "run", "run-busy", cwd=tmp_path)
    assert second.returncode == 2
    [line] = second.stderr.splitlines()
    assert line.startswith("HTTP 409: not fired: its previous job "), line

    catalogues.reset()  # lets the held answer go: the first run ends
    wait_for(
        lambda: [s for _, s, _ in scheduled_jobs(sched, schedule["id"])] == ["succeeded"],
        timeout=90,
        what="the first run to finish",
    )


def test_the_commands_read_the_dev_stacks_file(sched: Stack, tmp_path: Path) -> None:
    data_dir = tmp_path / ".syncbus"
    data_dir.mkdir()
    (data_dir / "dev.env").write_text(f"SYNCBUS_URL={sched.url}\nADMIN_API_KEY={ADMIN_KEY}\n")
    result = subprocess.run(
        [sys.executable, "-m", "cli", "schedules", "list", "--json"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"items": api_all(sched)}


def test_every_schedules_command_and_option_has_help() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    schedules = group.commands["schedules"]
    assert isinstance(schedules, TyperGroup)
    assert ".syncbus/dev.env" in (schedules.help or "")
    assert set(schedules.commands) == {"list", "add", "pause", "resume", "rm", "run"}
    for name, command in schedules.commands.items():
        assert command.help and len(command.help.split()) >= 4, name
        for param in command.params:
            text = getattr(param, "help", None)
            assert text and len(text.split()) >= 3, f"{name} {param.name}"
