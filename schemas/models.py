"""The models domain (seeds 000 and 003): one model as a source describes it, and as unified."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DOMAIN = "models"
SourceName = Literal["modelsdev", "openrouter", "huggingface", "artificialanalysis"]
SOURCES: tuple[SourceName, ...] = ("modelsdev", "openrouter", "huggingface", "artificialanalysis")
SourceState = Literal["ok", "skipped", "failed"]


class SourceModel(BaseModel):
    """One model as one source lists it, already normalised (prices in USD per 1M tokens)."""

    model_config = ConfigDict(frozen=True)

    source: SourceName
    source_id: str = Field(description="The source's own id, e.g. 'openai/gpt-4.1' or a uuid.")
    provider: str | None = Field(None, description="Lower-case provider/creator slug.")
    model: str | None = Field(None, description="Model slug within the provider, lower-case.")
    name: str | None = None
    context_length: int | None = None
    max_output: int | None = None
    input_price: float | None = Field(None, description="USD per 1M input tokens.")
    output_price: float | None = Field(None, description="USD per 1M output tokens.")
    input_modalities: tuple[str, ...] = ()
    output_modalities: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = Field((), description="tool_call, reasoning, attachment...")
    release_date: date | None = None
    open_weights: bool | None = None
    hugging_face_id: str | None = Field(None, description="Hugging Face repo id, when known.")
    aliases: tuple[str, ...] = Field((), description="Other ids this model is known by.")
    status: str | None = Field(None, description="e.g. 'deprecated' (models.dev).")
    extras: dict[str, Any] = Field(default_factory=dict, description="Source-only facts.")


class SourceReport(BaseModel):
    """How one source did in one sync."""

    source: SourceName
    state: SourceState
    models: int = 0
    pages: int = 0
    duration_ms: int = 0
    message: str | None = None


class UnifiedModel(BaseModel):
    """One row of the catalogue: the sources merged by the documented precedence."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Canonical id, '<provider>/<model>'.")
    provider: str
    name: str
    context_length: int | None = None
    max_output: int | None = None
    input_price: float | None = None
    output_price: float | None = None
    input_modalities: tuple[str, ...] = ()
    output_modalities: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    release_date: date | None = None
    open_weights: bool | None = None
    status: str = "active"
    sources: tuple[SourceName, ...] = ()
    source_ids: dict[str, str] = Field(default_factory=dict)
    extras: dict[str, Any] = Field(default_factory=dict)


class ModelSyncLogEntry(BaseModel):
    """``GET /api/admin/sync-models`` item: one run, newest first (seed 003)."""

    id: str
    status: str
    trigger: str
    sync_started_at: datetime | None
    sync_completed_at: datetime | None
    models_processed: int
    models_added: int
    models_updated: int
    models_removed: int
    error_message: str | None
    added_by_user_id: str | None
    sources: list[SourceReport] = Field(default_factory=list)
