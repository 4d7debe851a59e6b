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
MAX_SKIPPED_SLOTS = 120  # a repeated hour holds at most 60 one-minute slots
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
        runner = croniter(cron, after.astimezone(ZoneInfo(timezone)))
        # In the hour clocks go back, croniter answers with the hour's first pass, which
        # may be before ``after``: those slots are skipped (each fires once, the first time).
        for _ in range(MAX_SKIPPED_SLOTS):
            fire: datetime = runner.get_next(datetime).astimezone(UTC)
            if fire > after:
                return fire
        raise ValueError(f"'{cron}' does not fire after {after.isoformat()}")
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
