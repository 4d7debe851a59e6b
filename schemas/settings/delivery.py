"""Settings of delivery and recovery: the outbox relay, the reconciler, jobs and their payloads."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, Field


class DeliverySettings(BaseModel):
    """How requests reach the worker, how stuck ones are recovered, how jobs are grouped."""

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
