"""Settings of the models domain (seeds 000 and 003): the catalogue sources and their limits."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from schemas.settings.env_values import empty_is_unset


class ModelsSettings(BaseModel):
    """Sources are scheme://host[:port]; the path is ours."""

    modelsdev_base_url: str = Field("https://models.dev", validation_alias="MODELSDEV_BASE_URL")
    openrouter_base_url: str = Field(
        "https://openrouter.ai", validation_alias="OPENROUTER_BASE_URL"
    )
    huggingface_base_url: str = Field(
        "https://huggingface.co", validation_alias="HUGGINGFACE_BASE_URL"
    )
    artificialanalysis_base_url: str = Field(
        "https://artificialanalysis.ai", validation_alias="ARTIFICIALANALYSIS_BASE_URL"
    )
    artificialanalysis_api_key: str | None = Field(
        None, validation_alias="ARTIFICIALANALYSIS_API_KEY", repr=False
    )
    huggingface_token: str | None = Field(None, validation_alias="HUGGINGFACE_TOKEN", repr=False)
    huggingface_search: str | None = Field(None, validation_alias="HUGGINGFACE_SEARCH")
    huggingface_filter: str | None = Field("text-generation", validation_alias="HUGGINGFACE_FILTER")
    huggingface_sort: str = Field("downloads", validation_alias="HUGGINGFACE_SORT")
    huggingface_page_size: int = Field(100, ge=1, le=1000, validation_alias="HUGGINGFACE_PAGE_SIZE")
    huggingface_max_pages: int = Field(10, ge=1, validation_alias="HUGGINGFACE_MAX_PAGES")
    source_timeout_s: float = Field(30.0, gt=0, validation_alias="MODELS_SOURCE_TIMEOUT_S")
    source_retries: int = Field(3, ge=0, le=10, validation_alias="MODELS_SOURCE_RETRIES")
    source_max_retry_wait_s: float = Field(
        30.0, gt=0, validation_alias="MODELS_SOURCE_MAX_RETRY_WAIT_S"
    )

    _models_empty_is_unset = field_validator(
        "artificialanalysis_api_key",
        "huggingface_token",
        "huggingface_search",
        "huggingface_filter",
        mode="before",
    )(empty_is_unset)
