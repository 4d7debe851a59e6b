"""Seed 004 (RF/DE dictionary push): request body, entry rules, status and stats shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DOMAIN = "dictionary"
CEFR_LEVELS = ("A0", "A1", "A2", "B1", "B2", "C1", "C2")
MAX_TEXT = 2000

# camelCase field of a pushed entry -> column of dictionary_entries (besides the headword).
ENTRY_COLUMNS: dict[str, str] = {
    "ru": "ru",
    "level": "level",
    "register": "register",
    "accent": "accent",
    "frequencyRank": "frequency_rank",
    "rarity": "rarity",
    "ipaUk": "ipa_uk",
    "ipaUs": "ipa_us",
    "example": "example",
    "exampleRu": "example_ru",
}

SeedStatus = Literal["pending", "processing", "success", "failed"]
# sync_jobs.status -> the words seed 004 uses.
SEED_STATUS: dict[str, SeedStatus] = {
    "queued": "pending",
    "running": "processing",
    "succeeded": "success",
    "failed": "failed",
    "cancelled": "failed",
}


class DictionaryPush(BaseModel):
    """The body a DE sender posts to ``/api/internal/dictionary-upserts``.

    Entries are checked for shape here (an array of objects); each entry's content is
    checked by the worker, so one bad entry fails the job with an ``errorMessage``.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    request_id: str = Field(alias="requestId", min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=200)
    payload_version: str = Field("1", alias="payloadVersion", max_length=20)
    lang: str = Field(pattern=r"^[a-z]{2,3}$")
    actor_username: str | None = Field(None, alias="actorUsername", max_length=200)
    entries: list[dict[str, Any]] = Field(min_length=1)

    @field_validator("payload_version", mode="before")
    @classmethod
    def _version_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class DictionaryEntry(BaseModel):
    """One entry, as the worker accepts it. The headword is the field named by ``lang``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)

    word: str = Field(min_length=1, max_length=500)
    ru: str | None = Field(None, max_length=MAX_TEXT)
    level: Literal["A0", "A1", "A2", "B1", "B2", "C1", "C2"] | None = None
    register_: str | None = Field(None, alias="register", max_length=200)
    accent: str | None = Field(None, max_length=50)
    frequency_rank: int | None = Field(None, alias="frequencyRank", ge=0, le=2_147_483_647)
    rarity: str | None = Field(None, max_length=200)
    ipa_uk: str | None = Field(None, alias="ipaUk", max_length=500)
    ipa_us: str | None = Field(None, alias="ipaUs", max_length=500)
    example: str | None = Field(None, max_length=MAX_TEXT)
    example_ru: str | None = Field(None, alias="exampleRu", max_length=MAX_TEXT)
    extra: dict[str, Any] | None = None


class EntryError(ValueError):
    """A pushed entry that breaks the entry rules; the message names the entry."""


def parse_entry(lang: str, index: int, raw: dict[str, Any]) -> DictionaryEntry:
    """Validate one pushed entry; unknown fields are kept in ``extra``."""
    if not isinstance(raw, dict):
        raise EntryError(f"entry {index}: must be an object")
    known = {lang, *ENTRY_COLUMNS}
    data: dict[str, Any] = {k: v for k, v in raw.items() if k in ENTRY_COLUMNS}
    data["word"] = raw.get(lang)
    extra = {k: v for k, v in raw.items() if k not in known}
    if extra:
        data["extra"] = extra
    try:
        return DictionaryEntry.model_validate(data, strict=False)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "entry"
        if field == "word":
            field = lang
        raise EntryError(f"entry {index}: '{field}' {first['msg'].lower()}") from None


class PushAccepted(BaseModel):
    """Answer to a push: queued (202) or a replay of a known ``requestId`` (200)."""

    ok: bool = True
    request_id: str = Field(serialization_alias="requestId")
    job_id: str = Field(serialization_alias="jobId")
    status: SeedStatus
    replay: bool = False


class PushStatus(BaseModel):
    """``GET /api/internal/dictionary-upserts/status?requestId=...``."""

    ok: bool = True
    request_id: str = Field(serialization_alias="requestId")
    job_id: str = Field(serialization_alias="jobId")
    status: SeedStatus
    error_message: str | None = Field(None, serialization_alias="errorMessage")
    attempts: int
    entries: int | None = None
    created: int
    updated: int
    unchanged: int
    version: int | None = Field(None, description="Dictionary version after this job.")
    created_at: datetime = Field(serialization_alias="createdAt")
    started_at: datetime | None = Field(None, serialization_alias="startedAt")
    finished_at: datetime | None = Field(None, serialization_alias="finishedAt")


class QueueStats(BaseModel):
    """``GET /api/admin/dictionary/internal-sync/stats``."""

    pending: int
    processing: int
    success: int
    failed: int
    oldest_pending_age_seconds: float | None = Field(
        None, serialization_alias="oldestPendingAgeSeconds"
    )
    oldest_processing_age_seconds: float | None = Field(
        None, serialization_alias="oldestProcessingAgeSeconds"
    )
    failed_recent: int = Field(serialization_alias="failedRecent")
    recent_window_minutes: int = Field(serialization_alias="recentWindowMinutes")
