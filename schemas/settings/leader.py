"""Settings of what the leading worker runs: the scheduler, its seeded schedules, the alerts."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from schemas.schedules import check_cron
from schemas.settings.env_values import empty_is_unset


class LeaderSettings(BaseModel):
    """Leadership, schedules (seeds 002 and 003), alerts and the models health check."""

    leader_poll_s: float = Field(
        2.0,
        gt=0,
        validation_alias="SYNCBUS_LEADER_POLL_S",
        description="How often a worker that does not lead tries to take over leadership; "
        "a leader killed outright is replaced within about this long.",
    )
    scheduler_tick_s: float = Field(
        1.0,
        gt=0,
        validation_alias="SYNCBUS_SCHEDULER_TICK_S",
        description="How often the leader looks for due schedules.",
    )
    models_sync_cron: str = Field(
        "0 2 * * *",
        validation_alias="MODELS_SYNC_CRON",
        description="Seed 003's daily models sync (UTC); empty disables the seeded schedule.",
    )
    # Alerts, evaluated by the leader (seed 004's recommendations, seed 003's health check).
    alert_interval_s: float = Field(60.0, gt=0, validation_alias="SYNCBUS_ALERT_INTERVAL_S")
    alert_failed_window_s: float = Field(
        600.0,
        gt=0,
        validation_alias="SYNCBUS_ALERT_FAILED_WINDOW_S",
        description="A failed job opens an alert for this long (seed 004: 5-10 minutes).",
    )
    alert_queued_sla_s: float = Field(
        300.0,
        gt=0,
        validation_alias="SYNCBUS_ALERT_QUEUED_SLA_S",
        description="A job queued longer than this opens an alert (seed 004: pending SLA).",
    )
    alert_running_max_s: float = Field(
        1800.0,
        gt=0,
        validation_alias="SYNCBUS_ALERT_RUNNING_MAX_S",
        description="A job running longer than this opens an alert (seed 004: stuck).",
    )
    alert_schedule_grace_s: float = Field(
        300.0,
        gt=0,
        validation_alias="SYNCBUS_ALERT_SCHEDULE_GRACE_S",
        description="A schedule this late for its run opens an alert.",
    )
    alert_webhook_url: str | None = Field(
        None,
        validation_alias="SYNCBUS_ALERT_WEBHOOK_URL",
        repr=False,
        description="Slack or Discord incoming webhook; alerts are posted there when set.",
    )
    alert_webhook_attempts: int = Field(
        12, ge=1, le=100, validation_alias="SYNCBUS_ALERT_WEBHOOK_ATTEMPTS"
    )
    health_max_sync_age_hours: float = Field(
        25.0, gt=0, validation_alias="SYNCBUS_HEALTH_MAX_SYNC_AGE_HOURS"
    )
    health_min_models: int = Field(100, ge=0, validation_alias="SYNCBUS_HEALTH_MIN_MODELS")
    health_max_failure_rate: float = Field(
        20.0, ge=0, le=100, validation_alias="SYNCBUS_HEALTH_MAX_FAILURE_RATE"
    )
    health_recent_syncs: int = Field(10, ge=1, validation_alias="SYNCBUS_HEALTH_RECENT_SYNCS")

    # Seed 002's scheduler (the git domain's schedule; the stored configuration wins).
    metadata_sync_enabled: bool = Field(False, validation_alias="METADATA_SYNC_ENABLED")
    metadata_sync_interval_hours: float = Field(
        24.0, gt=0, validation_alias="METADATA_SYNC_INTERVAL_HOURS"
    )
    metadata_sync_on_startup: bool = Field(False, validation_alias="METADATA_SYNC_ON_STARTUP")

    _leader_empty_is_unset = field_validator("alert_webhook_url", mode="before")(empty_is_unset)

    @field_validator("models_sync_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value) if value.strip() else ""
