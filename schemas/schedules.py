"""Schedules: the API's bodies, and when a cron expression or an interval fires next."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.events import SyncMode
from schemas.json_value import Identifier, Params

MAX_INTERVAL_S = 366 * 86400
# Fire times of a repeated stretch of the wall clock (2 hours at most: Antarctica/Troll)
# that come before ``after``, skipped one by one.
MAX_WALL_STEPS = 2 * 60 + 1
Origin = Literal["config", "api"]


def check_cron(expression: str) -> str:
    """A standard five-field cron expression (minute hour day-of-month month day-of-week)."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron needs 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    if not croniter.is_valid(expression):
        raise ValueError(f"'{expression}' is not a valid cron expression")
    try:  # valid, yet naming no day that exists (such as 0 0 31 2 *)
        croniter(expression, datetime.now(UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"'{expression}' never fires") from None
    return " ".join(fields)


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder, such as Europe
        raise ValueError(
            f"unknown time zone '{name}' (an IANA name, such as UTC or Europe/Berlin)"
        ) from None
    return name


def next_fire(
    *,
    cron: str | None,
    interval_seconds: int | None,
    timezone: str,
    after: datetime,
    anchor: datetime | None = None,
) -> datetime:
    """The first fire time strictly after ``after``. A cron expression is read in
    ``timezone``; an interval counts from ``anchor`` (a previous fire time), or from
    ``after`` when there is none."""
    if cron is not None:
        # croniter steps through DST changes wrongly (in a repeated hour it goes back to the
        # hour's start), so it walks the naive wall clock and the zone gives each time its
        # offset: a repeated time fires in its first pass only, a time the clocks skip fires
        # an hour later.
        zone = ZoneInfo(timezone)
        runner = croniter(cron, after.astimezone(zone).replace(tzinfo=None))
        for _ in range(MAX_WALL_STEPS):
            wall: datetime = runner.get_next(datetime)
            fire = wall.replace(tzinfo=zone).astimezone(UTC)
            if fire > after:
                return fire
        utc_fire: datetime = croniter(cron, after).get_next(datetime)  # never seen: no zone
        return utc_fire  # repeats more than MAX_WALL_STEPS times
    assert interval_seconds is not None
    step = timedelta(seconds=interval_seconds)
    if anchor is None:
        return after + step
    if anchor > after:
        return anchor
    return anchor + step * ((after - anchor) // step + 1)


def last_fire(
    *, cron: str | None, interval_seconds: int | None, timezone: str, due: datetime, now: datetime
) -> datetime:
    """The latest fire time at or before ``now`` of a schedule that was due at ``due``:
    after downtime, the missed fires collapse into this one."""
    if cron is not None:
        local = now.astimezone(ZoneInfo(timezone))
        runner = croniter(cron, local + timedelta(microseconds=1))
        latest: datetime = runner.get_prev(datetime)
        return max(due, latest.astimezone(UTC))
    assert interval_seconds is not None
    step = timedelta(seconds=interval_seconds)
    return due + step * ((now - due) // step)


class _Timer(BaseModel):
    cron: str | None = Field(None, max_length=200, examples=["0 2 * * *"])
    interval_seconds: int | None = Field(None, ge=1, le=MAX_INTERVAL_S)
    timezone: str | None = Field(None, max_length=64, description="IANA name; default UTC.")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)


class ScheduleCreate(_Timer):
    """``POST /v1/schedules``: one of ``cron`` and ``interval_seconds``."""

    model_config = ConfigDict(extra="forbid")

    name: Identifier = Field(min_length=1, max_length=100)
    domain: Identifier = Field(min_length=1, max_length=64)
    scope: Identifier = Field("default", min_length=1, max_length=200)
    mode: SyncMode | None = Field(None, description="Default: incremental where supported.")
    params: Params = Field(default_factory=dict)
    enabled: bool = True

    @model_validator(mode="after")
    def _one_timer(self) -> Self:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("give exactly one of 'cron' and 'interval_seconds'")
        return self


class ScheduleUpdate(_Timer):
    """``PATCH /v1/schedules/{id}``: what to change. Giving ``cron`` replaces an interval
    and the other way round."""

    model_config = ConfigDict(extra="forbid")

    name: Identifier | None = Field(None, min_length=1, max_length=100)
    mode: SyncMode | None = None
    params: Params | None = None
    enabled: bool | None = None

    @model_validator(mode="after")
    def _one_timer(self) -> Self:
        if self.cron is not None and self.interval_seconds is not None:
            raise ValueError("give at most one of 'cron' and 'interval_seconds'")
        return self


class ScheduleView(BaseModel):
    """A schedule as the API shows it."""

    id: uuid.UUID
    name: str
    domain: str
    scope: str
    mode: SyncMode
    params: dict[str, Any]
    cron: str | None
    interval_seconds: int | None
    timezone: str
    enabled: bool
    next_run: datetime | None = Field(description="ISO 8601 with offset; null while disabled.")
    last_run: datetime | None
    last_job_id: uuid.UUID | None
    last_status: str | None
    origin: Origin = Field(description="'config': seeded from the environment; 'api': yours.")
    created_at: datetime
    updated_at: datetime


class ScheduleList(BaseModel):
    items: list[ScheduleView]
