"""Seed 004 (RF/DE dictionary push): request body, entry rules, status and stats shapes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.json_value import Identifier

DOMAIN = "dictionary"
CEFR_LEVELS = ("A0", "A1", "A2", "B1", "B2", "C1", "C2")
MAX_TEXT = 2000


@dataclass(frozen=True)
class EntryField:
    """A field of a pushed entry: where it is stored and what it may hold."""

    column: str
    kind: Literal["text", "level", "rank"]
    max_length: int | None = None


HEADWORD_MAX = 500
MAX_RANK = 2_147_483_647
# camelCase field of a pushed entry -> how it is checked and stored. The headword is the
# field named by the batch's ``lang`` (``"en": "hello"``); fields not listed here are kept
# in the ``extra`` column.
ENTRY_FIELDS: dict[str, EntryField] = {
    "ru": EntryField("ru", "text", MAX_TEXT),
    "level": EntryField("level", "level"),
    "register": EntryField("register", "text", 200),
    "accent": EntryField("accent", "text", 50),
    "frequencyRank": EntryField("frequency_rank", "rank"),
    "rarity": EntryField("rarity", "text", 200),
    "ipaUk": EntryField("ipa_uk", "text", 500),
    "ipaUs": EntryField("ipa_us", "text", 500),
    "example": EntryField("example", "text", MAX_TEXT),
    "exampleRu": EntryField("example_ru", "text", MAX_TEXT),
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


def entry_json_schema() -> dict[str, Any]:
    """JSON Schema of one entry, from ``ENTRY_FIELDS`` (what the worker enforces)."""
    properties: dict[str, Any] = {}
    for name, spec in ENTRY_FIELDS.items():
        if spec.kind == "text":
            properties[name] = {"type": ["string", "null"], "maxLength": spec.max_length}
        elif spec.kind == "level":
            properties[name] = {"type": ["string", "null"], "enum": [*CEFR_LEVELS, None]}
        else:
            properties[name] = {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_RANK}
    return {
        "type": "object",
        "description": (
            "The headword is the field named by the batch's `lang` (e.g. `en`): a non-empty "
            f"string of at most {HEADWORD_MAX} characters. Other fields are kept in `extra`."
        ),
        "properties": properties,
        "additionalProperties": True,
    }


class DictionaryBatchHeader(BaseModel):
    """A batch without its entries: who sent it, for which language."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    request_id: Identifier = Field(alias="requestId", min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=200)
    payload_version: str = Field("1", alias="payloadVersion", max_length=20)
    lang: str = Field(pattern=r"^[a-z]{2,3}$")
    actor_username: Identifier | None = Field(None, alias="actorUsername", max_length=200)

    @field_validator("payload_version", mode="before")
    @classmethod
    def _version_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class DictionaryPush(DictionaryBatchHeader):
    """The body a DE sender posts to ``/api/internal/dictionary-upserts``.

    Entries are checked for shape here (an array of objects); each entry's content is
    checked by the worker (``ENTRY_FIELDS``), so one bad entry fails the job with an
    ``errorMessage`` and nothing of the batch is written.
    """

    entries: list[dict[str, Any]] = Field(
        min_length=1, json_schema_extra={"items": entry_json_schema()}
    )


def entries_shape_errors(
    kind: str | None, count: int, first_not_object: int | None
) -> list[dict[str, Any]]:
    """What is wrong with a batch's ``entries`` as a whole (an array of objects, not
    empty), given its JSON type (None: absent), length and first non-object index, as
    pydantic-style errors; the content of each entry is the worker's to check."""
    if kind is None:
        return [{"loc": ("entries",), "msg": "Field required"}]
    if kind != "array":
        return [{"loc": ("entries",), "msg": "Input should be a valid list"}]
    if count == 0:
        return [{"loc": ("entries",), "msg": "List should have at least 1 item, not 0"}]
    if first_not_object is not None:
        return [{"loc": ("entries", first_not_object), "msg": "Input should be a valid dictionary"}]
    return []


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
