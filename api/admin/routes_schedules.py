"""Schedules and alerts: pause, resume, change the timer, run now — through the API's own code."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from api.admin.pages import FormChecked, SignedIn, State, redirect, render
from api.admin.session import Session
from api.problems import Problem
from api.routes import alerts as alerts_api
from api.routes import schedules as schedules_api
from api.security import ascii_int
from api.state import ApiState
from schemas.schedules import ScheduleUpdate

router = APIRouter(prefix="/admin", include_in_schema=False)

PAGE = "/admin/schedules"


async def _page(
    request: Request, state: ApiState, session: Session, error: str = "", status: int = 200
) -> Response:
    listing = await schedules_api.list_schedules(state, None)
    alerts = await alerts_api.list_alerts(state, None, 50)
    context: dict[str, Any] = {
        "title": "Schedules and alerts",
        "schedules": listing.items,
        "alerts": alerts.items,
        "error": error,
    }
    return render(request, "schedules.html", session, context, status_code=status)


@router.get("/schedules", response_class=HTMLResponse)
async def schedules_page(request: Request, state: State, session: SignedIn) -> Response:
    return await _page(request, state, session)


def _schedule_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Problem(404, f"schedule {value!r} not found") from None


async def _change(
    request: Request, state: ApiState, session: Session, schedule_id: str, values: dict[str, Any]
) -> Response:
    """PATCH /v1/schedules/{id}'s rules, then back to the list (or the list with the refusal)."""
    try:
        body = ScheduleUpdate.model_validate(values)
        await schedules_api.update_schedule(_schedule_id(schedule_id), body, state)
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'timer'}: {e['msg']}"
                            for e in exc.errors(include_input=False))  # fmt: skip
        return await _page(request, state, session, reasons, 422)
    except Problem as refused:
        return await _page(request, state, session, refused.detail, refused.status)
    return redirect(PAGE)


@router.post("/schedules/{schedule_id}/pause", response_class=HTMLResponse)
async def pause(schedule_id: str, request: Request, state: State, session: FormChecked) -> Response:
    return await _change(request, state, session, schedule_id, {"enabled": False})


@router.post("/schedules/{schedule_id}/resume", response_class=HTMLResponse)
async def resume(
    schedule_id: str, request: Request, state: State, session: FormChecked
) -> Response:
    return await _change(request, state, session, schedule_id, {"enabled": True})


@router.post("/schedules/{schedule_id}/timer", response_class=HTMLResponse)
async def change_timer(
    schedule_id: str, request: Request, state: State, session: FormChecked
) -> Response:
    """One field: a number of seconds, or a cron expression."""
    form = await request.form()
    timer = str(form.get("timer") or "").strip()
    if not timer:
        return await _page(request, state, session, "timer: seconds or a cron expression", 422)
    seconds = ascii_int(timer, max_digits=12)
    values: dict[str, Any] = (
        {"interval_seconds": seconds} if seconds is not None else {"cron": timer}
    )
    return await _change(request, state, session, schedule_id, values)


@router.post("/schedules/{schedule_id}/run", response_class=HTMLResponse)
async def run_now(
    schedule_id: str, request: Request, state: State, session: FormChecked
) -> Response:
    try:
        job = await schedules_api.run_schedule(_schedule_id(schedule_id), state, Response())
    except Problem as refused:
        return await _page(request, state, session, refused.detail, refused.status)
    return redirect(f"/admin/jobs/{job.id}")
