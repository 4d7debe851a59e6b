"""``/v1/schedules``: periodic syncs the leading worker fires, editable at runtime."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from api.auth import AdminOnly
from api.domains import mode_for
from api.problems import Problem
from api.routes.v1 import job_view
from api.state import ApiState, get_state
from api.submit import publish_id_soon
from db import schedules
from db.engine import autocommit
from schemas.domains import DOMAIN_RULES, schedulable
from schemas.events import SyncMode
from schemas.jobs import JobView
from schemas.json_value import Identifier
from schemas.schedules import ScheduleCreate, ScheduleList, ScheduleUpdate, ScheduleView

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], dependencies=[AdminOnly])
State = Annotated[ApiState, Depends(get_state)]


def schedule_view(row: RowMapping) -> ScheduleView:
    return ScheduleView.model_validate(dict(row))


def _check_domain(domain: str, mode: SyncMode | None) -> SyncMode:
    """The mode to use; 422 for a domain a schedule cannot fire or a mode it lacks."""
    rules = DOMAIN_RULES.get(domain)
    if rules is None or not rules.pull:
        why = "is a push domain: its requests carry their data" if rules else "is unknown"
        raise Problem(422, f"domain: '{domain}' {why}; schedulable: {', '.join(schedulable())}")
    return mode_for(domain, mode)


async def _schedule(state: ApiState, schedule_id: uuid.UUID) -> RowMapping:
    async with autocommit(state.engine) as conn:
        row = await schedules.get(conn, schedule_id)
    if row is None:
        raise Problem(404, f"schedule {schedule_id} not found")
    return row


@router.get("", response_model=ScheduleList)
async def list_schedules(
    state: State, domain: Annotated[Identifier | None, Query(max_length=64)] = None
) -> ScheduleList:
    async with autocommit(state.engine) as conn:
        rows = await schedules.list_all(conn, domain)
    return ScheduleList(items=[schedule_view(r) for r in rows])


@router.post("", status_code=201, response_model=ScheduleView)
async def create_schedule(body: ScheduleCreate, state: State, response: Response) -> ScheduleView:
    values = body.model_dump()
    values["mode"] = _check_domain(body.domain, body.mode)
    values["timezone"] = body.timezone or "UTC"
    try:
        async with state.engine.begin() as conn:
            row = await schedules.create(conn, values, origin="api")
    except IntegrityError:
        raise Problem(
            409, f"a schedule named '{body.name}' exists for {body.domain}/{body.scope}"
        ) from None
    response.headers["Location"] = f"/v1/schedules/{row['id']}"
    return schedule_view(row)


@router.get("/{schedule_id}", response_model=ScheduleView)
async def get_schedule(schedule_id: uuid.UUID, state: State) -> ScheduleView:
    return schedule_view(await _schedule(state, schedule_id))


@router.patch("/{schedule_id}", response_model=ScheduleView)
async def update_schedule(
    schedule_id: uuid.UUID, body: ScheduleUpdate, state: State
) -> ScheduleView:
    changes = body.model_dump(exclude_unset=True)
    for key in ("name", "params", "enabled", "timezone", "mode"):
        if key in changes and changes[key] is None:
            raise Problem(422, f"{key}: may not be null")
    timers = [k for k in ("cron", "interval_seconds") if k in changes]
    if timers and all(changes[k] is None for k in timers):
        raise Problem(422, "give a cron or an interval_seconds to replace the timer, not null")
    if "mode" in changes:
        domain = (await _schedule(state, schedule_id))["domain"]
        changes["mode"] = _check_domain(domain, changes["mode"])
    try:
        async with state.engine.begin() as conn:
            current = await schedules.get(conn, schedule_id)
            if current is None:
                raise Problem(404, f"schedule {schedule_id} not found")
            row = await schedules.change(conn, current, changes, origin="api")
    except IntegrityError:
        raise Problem(409, f"a schedule named '{changes.get('name')}' exists there") from None
    return schedule_view(row)


@router.delete("/{schedule_id}", status_code=204)
async def delete_schedule(schedule_id: uuid.UUID, state: State) -> Response:
    async with state.engine.begin() as conn:
        if not await schedules.delete(conn, schedule_id):
            raise Problem(404, f"schedule {schedule_id} not found")
    return Response(status_code=204)


@router.post("/{schedule_id}/run", status_code=202, response_model=JobView)
async def run_schedule(schedule_id: uuid.UUID, state: State, response: Response) -> JobView:
    """Fire now, outside the timer (``next_run`` stays); 409 while its last job is active."""
    async with state.engine.begin() as conn:
        current = await schedules.get(conn, schedule_id)
        if current is None:
            raise Problem(404, f"schedule {schedule_id} not found")
        fired = await schedules.fire(
            conn,
            current,
            state.topics,
            request_id=f"schedule:{schedule_id}:run:{uuid.uuid4()}",
            actor="admin",
        )
    if fired.skipped is not None or fired.job is None:
        job_id = str(fired.job["id"]) if fired.job is not None else None
        raise Problem(409, f"not fired: {fired.skipped}", job_id=job_id)
    if fired.outbox_id is not None:
        publish_id_soon(state, fired.outbox_id)
    response.headers["Location"] = f"/v1/syncs/{fired.job['id']}"
    return job_view(fired.job)
