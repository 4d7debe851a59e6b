"""The job as the generic ``/v1`` API shows it, and the counts every domain reports."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import SyncMode
from schemas.json_value import Identifier, Params, StorableJson

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobCounts(BaseModel):
    """What a sync did, counted exactly."""

    discovered: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    errors: int = 0


class JobView(BaseModel):
    """One sync job."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    request_id: str
    domain: str
    scope: str
    mode: SyncMode
    status: JobStatus
    trigger: str
    actor: str | None
    params: dict[str, Any]
    counts: JobCounts
    result: dict[str, Any]
    error_message: str | None
    attempt: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    events_url: str = Field(description="SSE stream of this job's progress.")


class SyncCreate(BaseModel):
    """``POST /v1/syncs``: ask for a sync in any domain."""

    model_config = ConfigDict(extra="forbid")

    domain: Identifier = Field(min_length=1, max_length=64)
    scope: Identifier | None = Field(None, min_length=1, max_length=200)
    mode: SyncMode | None = Field(None, description="Default: incremental where supported.")
    request_id: Identifier | None = Field(None, min_length=1, max_length=200)
    params: Params = Field(default_factory=dict)
    payload: StorableJson | None = None


class JobList(BaseModel):
    """A page of jobs, newest first."""

    items: list[JobView]
    next_before: datetime | None = Field(
        None,
        description="Pass as `before` for the next page (none: this was the last). A page "
        "holds more than `limit` jobs when several were created at the instant of its last one.",
    )
