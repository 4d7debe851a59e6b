"""``/v1/schedules``: validation with reasons, the answer's shape, pause and resume, run now."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from croniter import croniter

from schemas.schedules import next_fire
from tests.stack import Stack

FAR = "0 2 * * *"  # fires at 02:00 UTC: never during a test run worth worrying about


def create(client: httpx.Client, **body: Any) -> httpx.Response:
    text = json.dumps({"domain": "models", **body}).replace('"1e400"', "1e400")
    return client.post("/v1/schedules", content=text, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"name": "a", "cron": "61 * * * *"}, "not a valid cron expression"),
        ({"name": "a", "cron": "* * * *"}, "cron needs 5 fields"),
        ({"name": "a", "cron": "0 0 * * * *"}, "cron needs 5 fields"),
        ({"name": "a"}, "exactly one of 'cron' and 'interval_seconds'"),
        ({"name": "a", "cron": FAR, "interval_seconds": 60}, "exactly one of"),
        ({"name": "a", "interval_seconds": 0}, "interval_seconds"),
        ({"name": "a", "interval_seconds": "soon"}, "interval_seconds"),
        ({"name": "a", "cron": FAR, "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"name": "a", "cron": FAR, "domain": "dictionary"}, "push domain"),
        ({"name": "a", "cron": FAR, "domain": "weather"}, "'weather' is unknown"),
        ({"name": "a", "cron": FAR, "mode": "incremental"}, "full only"),
        ({"name": "a\nb", "cron": FAR}, "control character"),
        ({"name": "a", "cron": FAR, "params": {"x": "1e400"}}, "params"),
        ({"name": "a", "cron": FAR, "colour": "red"}, "colour"),
    ],
)
def test_invalid_schedules_are_422_with_the_reason(
    stack: Stack, body: dict[str, Any], reason: str
) -> None:
    with stack.client() as client:
        before = len(client.get("/v1/schedules").json()["items"])
        response = create(client, **body)
        after = len(client.get("/v1/schedules").json()["items"])
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert reason in response.text
    assert after == before


def test_create_read_change_and_delete(stack: Stack) -> None:
    with stack.client() as client:
        created = create(client, name="api-berlin", cron="30 6 * * 1-5", timezone="Europe/Berlin")
        assert created.status_code == 201, created.text
        schedule = created.json()
        url = created.headers["location"]
        assert url == f"/v1/schedules/{schedule['id']}"
        assert schedule["mode"] == "full" and schedule["scope"] == "default"
        assert schedule["origin"] == "api" and schedule["enabled"] is True
        assert (schedule["last_run"], schedule["last_job_id"], schedule["last_status"]) == (
            None, None, None
        )  # fmt: skip
        next_run = datetime.fromisoformat(schedule["next_run"])
        assert next_run.utcoffset() is not None, "ISO 8601 with an offset"
        local_now = datetime.now(UTC).astimezone(ZoneInfo("Europe/Berlin"))
        berlin = croniter("30 6 * * 1-5", local_now).get_next(datetime)
        assert next_run == berlin

        again = create(client, name="api-berlin", cron=FAR)
        assert again.status_code == 409

        paused = client.patch(url, json={"enabled": False}).json()
        assert (paused["enabled"], paused["next_run"]) == (False, None)
        resumed = client.patch(url, json={"enabled": True, "interval_seconds": 7200}).json()
        assert (resumed["cron"], resumed["interval_seconds"]) == (None, 7200)
        assert datetime.fromisoformat(resumed["next_run"]) > datetime.now(UTC)
        assert client.patch(url, json={"cron": "bad"}).status_code == 422
        assert client.patch(url, json={"enabled": None}).status_code == 422

        listed = client.get("/v1/schedules", params={"domain": "models"}).json()["items"]
        assert schedule["id"] in {s["id"] for s in listed}

        assert client.delete(url).status_code == 204
        assert client.get(url).status_code == 404
        assert client.delete(url).status_code == 404
        assert client.get("/v1/schedules/not-a-uuid").status_code == 422


def test_schedules_need_admin_credentials(stack: Stack) -> None:
    with stack.client(admin=False) as client:
        assert client.get("/v1/schedules").status_code == 401
        assert create(client, name="x", cron=FAR).status_code == 401


@pytest.mark.parametrize(
    ("cron", "timezone", "first_pass", "longest_wait"),
    [
        # New York, 2026-11-01: 01:00-02:00 twice (EDT, then EST).
        ("*/7 * * * *", "America/New_York", datetime(2026, 11, 1, 5, 0, tzinfo=UTC), 64),
        ("* * * * *", "America/New_York", datetime(2026, 11, 1, 5, 0, tzinfo=UTC), 61),
        # Berlin, 2026-10-25: 02:00-03:00 twice (CEST, then CET).
        ("* * * * *", "Europe/Berlin", datetime(2026, 10, 25, 0, 0, tzinfo=UTC), 61),
        # Berlin, 2026-03-29: 02:00-03:00 never happens.
        ("* * * * *", "Europe/Berlin", datetime(2026, 3, 29, 0, 30, tzinfo=UTC), 1),
    ],
)
def test_a_cron_fires_after_its_last_time_across_a_clock_change(
    cron: str, timezone: str, first_pass: datetime, longest_wait: int
) -> None:
    """croniter, given an aware time in a repeated hour, answers from the hour's first pass
    (before ``after``: a schedule fired at every tick of the second pass) or from its start
    (``* * * * *``: no answer after ``after`` at all). The repeated hour fires once."""
    for minute in range(0, 150):
        after = first_pass + timedelta(minutes=minute)
        fire = next_fire(cron=cron, interval_seconds=None, timezone=timezone, after=after)
        assert fire > after, (after, fire)
        assert fire - after <= timedelta(minutes=longest_wait), (after, fire)
