"""``GET /v1/alerts``: alerts the leading worker opened and resolved, newest first."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from api.auth import AdminOnly
from api.state import ApiState, get_state
from db import alerts
from db.engine import autocommit
from schemas.alerts import AlertList, AlertView

router = APIRouter(prefix="/v1/alerts", tags=["alerts"], dependencies=[AdminOnly])
State = Annotated[ApiState, Depends(get_state)]


@router.get("", response_model=AlertList)
async def list_alerts(
    state: State,
    status: Literal["open", "resolved"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AlertList:
    async with autocommit(state.engine) as conn:
        rows = await alerts.list_alerts(conn, status, limit)
    return AlertList(items=[AlertView.model_validate(dict(r)) for r in rows])
