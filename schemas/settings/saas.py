"""Settings of the saas domain (seed 001, supasaasy): app instances, POST /sync, SaaS APIs."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from schemas.settings.env_values import CommaList, empty_is_unset, split_commas


class SaasSettings(BaseModel):
    """The apps file, the /sync endpoint's limits, and how SaaS APIs are called."""

    apps_file: str | None = Field(
        None,
        validation_alias="SYNCBUS_APPS_FILE",
        description="YAML file of app instances, loaded by the api at start.",
    )
    sync_rate_limit: int = Field(
        10,
        ge=1,
        validation_alias="SYNCBUS_SYNC_RATE_LIMIT",
        description="POST /sync requests per minute and admin key (seed 001: 10).",
    )
    cors_origins: CommaList = Field(
        default_factory=list,
        validation_alias="SYNCBUS_CORS_ORIGINS",
        description="Origins whose preflight OPTIONS to /sync is answered; never '*'.",
    )
    saas_immediate_wait_s: float = Field(
        300.0,
        gt=0,
        validation_alias="SYNCBUS_SAAS_IMMEDIATE_WAIT_S",
        description="How long POST /sync with immediate: true waits for the result.",
    )
    saas_request_timeout_s: float = Field(
        30.0, gt=0, validation_alias="SYNCBUS_SAAS_REQUEST_TIMEOUT_S"
    )
    saas_retries: int = Field(
        4,
        ge=0,
        le=20,
        validation_alias="SYNCBUS_SAAS_RETRIES",
        description="Retries of a SaaS API request after 429, 5xx or a network error.",
    )
    saas_max_retry_wait_s: float = Field(
        30.0, gt=0, validation_alias="SYNCBUS_SAAS_MAX_RETRY_WAIT_S"
    )
    saas_parallel_chains: int = Field(
        4,
        ge=1,
        le=32,
        validation_alias="SYNCBUS_SAAS_PARALLEL_CHAINS",
        description="Cursor chains listing one large collection at once (slices of created).",
    )
    stripe_requests_per_s: float = Field(
        25.0,
        gt=0,
        validation_alias="SYNCBUS_STRIPE_REQUESTS_PER_S",
        description="Requests a second to one Stripe account (Stripe: 25 test, 100 live).",
    )

    _saas_split = field_validator("cors_origins", mode="before")(split_commas)
    _saas_empty_is_unset = field_validator("apps_file", mode="before")(empty_is_unset)
