"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.state import ApiState, get_state
from db.engine import autocommit

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: Annotated[ApiState, Depends(get_state)]) -> JSONResponse:
    """PostgreSQL answers, the broker is reachable and the apps and releases files are in the
    database (503 otherwise)."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(3):
            async with autocommit(state.engine) as conn:
                await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:
        checks["database"] = "unreachable"
    checks["broker"] = "ok" if await asyncio.to_thread(state.producer.reachable) else "unreachable"
    checks["config_files"] = "ok" if state.config_files_loaded.is_set() else "loading"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )
