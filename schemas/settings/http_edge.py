"""Settings of the api's HTTP edge: body and batch limits, SSE streams, failed-auth limiting."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class HttpEdgeSettings(BaseModel):
    """What one request or stream may take, and the log level every process starts with."""

    max_body_bytes: int = Field(1_048_576, ge=1, validation_alias="SYNCBUS_MAX_BODY_BYTES")
    dictionary_max_body_bytes: int = Field(
        32 * 1_048_576, ge=1, validation_alias="SYNCBUS_DICTIONARY_MAX_BODY_BYTES"
    )
    dictionary_max_entries: int = Field(
        50_000, ge=1, validation_alias="SYNCBUS_DICTIONARY_MAX_ENTRIES"
    )
    sse_inactivity_timeout_s: float = Field(
        300.0, gt=0, validation_alias="SYNCBUS_SSE_INACTIVITY_TIMEOUT_S"
    )
    sse_db_poll_s: float = Field(1.0, gt=0, validation_alias="SYNCBUS_SSE_DB_POLL_S")
    # Read by every command, not only the api; here so that Settings keeps its field order.
    log_level: LogLevel = Field("INFO", validation_alias="SYNCBUS_LOG_LEVEL")

    auth_failures_per_minute: int = Field(
        20,
        ge=0,
        validation_alias="SYNCBUS_AUTH_FAILURES_PER_MINUTE",
        description="Wrong credentials one client address may present per minute before its "
        "requests get 429 (counted in PostgreSQL, shared by every api replica); 0 turns it off.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        """Any case; ``logging``'s aliases WARN and FATAL as the names they stand for."""
        if not isinstance(value, str):
            return value
        name = value.strip().upper()
        return {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(name, name)
