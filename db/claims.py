"""Claiming jobs for a worker: one job, a scope's run of queued jobs, or a dead holder's job."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.jobs import is_attempt
from db.tables import sync_events, sync_jobs
from schemas.events import PayloadRef, SyncRequest

# A scope's active jobs in acceptance order (the partial index of migration 0014), with
# the size of each pushed batch.
SCOPE_ACTIVE = text(
    """
    SELECT j.id, j.number, j.status, j.attempt, coalesce(p.entries_count, 0) AS entries
    FROM sync_jobs j LEFT JOIN sync_payloads p ON p.job_id = j.id
    WHERE j.domain = :domain AND j.scope = :scope AND j.status IN ('queued', 'running')
      AND j.number <= :own
    UNION ALL (
        SELECT j.id, j.number, j.status, j.attempt, coalesce(p.entries_count, 0)
        FROM sync_jobs j LEFT JOIN sync_payloads p ON p.job_id = j.id
        WHERE j.domain = :domain AND j.scope = :scope AND j.status IN ('queued', 'running')
          AND j.number > :own
        ORDER BY j.number
        LIMIT :n
    )
    ORDER BY 2
    """
)


@dataclass(frozen=True)
class GroupLimits:
    """How much one transaction applies when it takes a scope's queued jobs together."""

    max_jobs: int = 32
    max_entries: int = 2_000


@dataclass(frozen=True)
class Candidate:
    id: uuid.UUID
    number: int
    status: str
    attempt: int
    entries: int


async def scope_active(
    conn: AsyncConnection, domain: str, scope: str, own_number: int, later: int
) -> list[Candidate]:
    """The scope's queued and running jobs, oldest accepted first: every one up to job
    number ``own_number`` (those may have to run first) and at most ``later`` after it."""
    params = {"domain": domain, "scope": scope, "own": own_number, "n": later}
    rows = await conn.execute(SCOPE_ACTIVE, params)
    return [Candidate(*row) for row in rows]


def pick_group(
    active: Sequence[Candidate],
    own: uuid.UUID,
    limits: GroupLimits,
    *,
    dead: Collection[uuid.UUID] = frozenset(),
    here: Collection[uuid.UUID] = frozenset(),
) -> list[uuid.UUID] | None:
    """Which jobs to apply together, in order, for the request of job ``own``: every job
    accepted before it that is queued (its message has not come yet: another api replica
    published it late, or the broker lost it) or running on a worker that is gone
    (``dead``: its lock was free), then its own, then the queued jobs right after it (their
    messages follow it), up to ``limits``. A running job after it ends the run. Empty: the
    own job ended. None: wait, a job that must go first runs on a live worker elsewhere
    (running, neither ``dead`` nor ``here``, this worker's)."""
    mine = next((c for c in active if c.id == own), None)
    if mine is None:
        return []
    if mine.status == "running" and own not in dead:
        return [] if own in here else None
    picked: list[Candidate] = []
    for candidate in active:
        if candidate.number < mine.number:
            if candidate.status == "queued" or candidate.id in dead:
                picked.append(candidate)
            elif candidate.id not in here:
                return None
            continue
        if candidate.id != own and candidate.status != "queued":
            break
        picked.append(candidate)
    group: list[uuid.UUID] = []
    entries = 0
    for candidate in picked:
        entries += candidate.entries
        if group and (len(group) >= limits.max_jobs or entries > limits.max_entries):
            break
        group.append(candidate.id)
    return group


def _next_seq(job_id: Any) -> Select[tuple[int]]:
    """A job's next event number: earlier attempts' events keep theirs."""
    return select(func.coalesce(func.max(sync_events.c.seq), 0) + 1).where(
        sync_events.c.job_id == job_id
    )


# Returned with each claimed row.
NEXT_SEQ = _next_seq(sync_jobs.c.id).scalar_subquery().label("next_seq")
# Read after a takeover's update (see take_over).
FOLLOWING_SEQ = _next_seq(bindparam("job_id"))


def _next_attempt() -> dict[str, Any]:
    """The values that start a job's next attempt here."""
    return {
        "status": "running",
        "attempt": sync_jobs.c.attempt + 1,
        "started_at": func.now(),
        "heartbeat_at": func.now(),
        "updated_at": func.now(),
        "error_message": None,
    }


async def claim_ids(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> list[Mapping[str, Any]]:
    """Move the queued ones of ``ids`` to running; returns them in ``ids`` order, each
    with its ``next_seq``."""
    if not ids:
        return []
    stmt = (
        update(sync_jobs)
        .where(sync_jobs.c.id.in_(ids), sync_jobs.c.status == "queued")
        .values(**_next_attempt())
        .returning(*sync_jobs.c, NEXT_SEQ)
    )
    claimed = (await conn.execute(stmt)).mappings().all()
    rows: dict[uuid.UUID, Mapping[str, Any]] = {row["id"]: dict(row) for row in claimed}
    return [rows[job] for job in ids if job in rows]


async def take_over(
    conn: AsyncConnection, job_id: uuid.UUID, attempt: int
) -> Mapping[str, Any] | None:
    """A running job whose holder is gone: run it here as the next attempt. None when it
    is no longer that attempt (it ended, or someone else took it). With ``next_seq``,
    read after the update: the update may have waited for the row while the previous
    attempt committed events, which a subquery of the update (its snapshot taken before
    the wait) would not see."""
    stmt = (
        update(sync_jobs)
        .where(is_attempt(job_id, attempt))
        .values(**_next_attempt())
        .returning(*sync_jobs.c)
    )
    row = (await conn.execute(stmt)).mappings().first()
    if row is None:
        return None
    next_seq = (await conn.execute(FOLLOWING_SEQ, {"job_id": job_id})).scalar_one()
    return {**row, "next_seq": next_seq}


def request_of(row: Mapping[Any, Any]) -> SyncRequest:
    """The request a job row was created from, as the reconciler re-publishes it (a pushed
    payload by reference)."""
    return SyncRequest(
        request_id=row["request_id"],
        domain=row["domain"],
        scope=row["scope"],
        mode=row["mode"],
        trigger=row["trigger"],
        actor=row["actor"],
        params=row["params"],
        payload_ref=(
            PayloadRef(job_id=row["id"], sha256=row["payload_sha256"])
            if row["payload_sha256"]
            else None
        ),
    )
