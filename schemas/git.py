"""The git domain's bodies (seed 002): releases, the sync configuration, status and history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

DOMAIN = "git"
ALL_RELEASES = "all"  # the scope of a sync of every active release (trigger-all, the schedule)
SCHEDULE_NAME = "metadata-sync"
ENABLED_KEY = "METADATA_SYNC_ENABLED"  # app_settings keys, as the seed names them
INTERVAL_KEY = "METADATA_SYNC_INTERVAL_HOURS"
MAX_INTERVAL_HOURS = 24 * 366

# A branch is the scope of its sync jobs (SyncRequest.scope: at most 200 characters).
MAX_BRANCH = 200
_BAD_BRANCH_CHARS = frozenset(" ~^:?*[\\\x7f") | {chr(c) for c in range(32)}


def branch_problem(branch: str) -> str | None:
    """Why ``branch`` is not a branch name git accepts (``git check-ref-format --branch``),
    or None. The worker never hands git a name that could read as an option."""
    parts = branch.split("/")
    bad = (
        not branch
        or len(branch) > MAX_BRANCH
        or branch.startswith("-")
        or branch in {"HEAD", "@"}
        or ".." in branch
        or "@{" in branch
        or branch.endswith(".")
        or any(c in _BAD_BRANCH_CHARS for c in branch)
        or any(not p or p.startswith(".") or p.endswith(".lock") for p in parts)
    )
    return f"'{branch[:80]}' is not a valid git branch name" if bad else None


def seed_time(moment: datetime | None) -> str | None:
    """Timestamps as the seed prints them: UTC, to the second, no zone (2026-02-06T10:28:15)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat()


def _check_name(value: str | None) -> str | None:
    if value is None:  # ReleasePatch's null name: refused by ReleasePatch.changes()
        return value
    if value != value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("name must not have surrounding spaces or control characters")
    return value


def _check_branch(value: str | None) -> str | None:
    if value is not None and (problem := branch_problem(value)):
        raise ValueError(problem)
    return value


class ReleaseIn(BaseModel):
    """A release to create: ``{"name": "7.0.0.0", "git_branch": "master", "active": true}``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    git_branch: str | None = Field(None, min_length=1, max_length=MAX_BRANCH)
    active: bool = True

    _name = field_validator("name")(_check_name)
    _branch = field_validator("git_branch")(_check_branch)


class ReleasePatch(BaseModel):
    """A change to a release; absent fields stay, ``git_branch: null`` removes the branch."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    git_branch: str | None = Field(None, min_length=1, max_length=MAX_BRANCH)
    active: bool | None = None

    _name = field_validator("name")(_check_name)
    _branch = field_validator("git_branch")(_check_branch)

    def changes(self) -> dict[str, Any]:
        given = self.model_dump(exclude_unset=True)
        if given.get("name", "") is None or given.get("active", False) is None:
            raise ValueError("name and active cannot be null")
        return given


class ConfigureBody(BaseModel):
    """``POST .../configure``: ``{"enabled": true, "interval_hours": 12.0}``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    interval_hours: float | None = Field(None, gt=0, le=MAX_INTERVAL_HOURS, allow_inf_nan=False)


class SyncConfig(BaseModel):
    """The configuration in force: the stored values win over the environment."""

    enabled: bool
    interval_hours: float


def interval_seconds(hours: float) -> int:
    return max(1, round(hours * 3600))
