"""Settings of the infrastructure: where Kafka and PostgreSQL are, how a worker joins Kafka."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from schemas.settings.env_values import empty_is_unset

# What a process says of a DATABASE_URL libpq cannot read (its own words would quote the
# URL, password included).
NOT_A_POSTGRESQL_URL = "DATABASE_URL is not a PostgreSQL URL (postgresql://user@host:port/database)"


class InfrastructureSettings(BaseModel):
    """The broker, the database, the topics and the worker's consumer group."""

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

    _infrastructure_empty_is_unset = field_validator("worker_group", mode="before")(empty_is_unset)

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
