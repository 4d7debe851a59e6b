"""Seed 002's releases, with the same PIN: list, create, change, delete, and their tests."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.engine import RowMapping

from api.auth import PinOnly
from api.problems import Problem
from api.state import ApiState, get_state
from db import git
from db.engine import autocommit
from db.git_tables import releases
from schemas.git import ReleaseIn, ReleasePatch, seed_time

INT4_MAX = 2_147_483_647  # release ids are PostgreSQL integers

router = APIRouter(prefix="/api/v1/admin/releases", tags=["git (seed 002)"], dependencies=[PinOnly])
State = Annotated[ApiState, Depends(get_state)]


def release_view(row: RowMapping) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "name": row["name"],
        "git_branch": row["git_branch"],
        "active": row["active"],
        "created_at": seed_time(row["created_at"]),
        "updated_at": seed_time(row["updated_at"]),
    }


def test_view(row: RowMapping) -> dict[str, Any]:
    return {
        "nodeid": row["nodeid"],
        "file": row["file"],
        "line": row["line"],
        "class_name": row["class_name"],
        "function": row["function"],
        "kind": row["kind"],
        "markers": row["markers"],
        "parametrize_count": row["parametrize_count"],
        "parametrize_ids": row["parametrize_ids"],
        "docstring": row["docstring"],
        "staging": row["staging"],
    }


async def find_release(state: ApiState, release_id: int) -> RowMapping | None:
    if not 0 < release_id <= INT4_MAX:
        return None
    async with autocommit(state.engine) as conn:
        return await git.get_release(conn, release_id)


async def _release(state: ApiState, release_id: int) -> RowMapping:
    row = await find_release(state, release_id)
    if row is None:
        raise Problem(404, f"Release {release_id} not found")
    return row


@router.get("")
async def list_releases(state: State) -> list[dict[str, Any]]:
    async with autocommit(state.engine) as conn:
        rows = await git.list_releases(conn)
    return [release_view(r) for r in rows]


@router.post("", status_code=201)
async def create_release(body: ReleaseIn, state: State, response: Response) -> dict[str, Any]:
    try:
        async with state.engine.begin() as conn:
            row = await git.create_release(conn, body.model_dump())
    except git.ReleaseNameTaken:
        raise Problem(409, f"Release {body.name} already exists") from None
    response.headers["Location"] = f"/api/v1/admin/releases/{row['id']}"
    return release_view(row)


@router.get("/{release_id}")
async def get_release(release_id: int, state: State) -> dict[str, Any]:
    return release_view(await _release(state, release_id))


@router.patch("/{release_id}")
async def change_release(release_id: int, body: ReleasePatch, state: State) -> dict[str, Any]:
    try:
        changes = body.changes()
    except ValueError as exc:
        raise Problem(422, str(exc)) from None
    if not changes:
        return release_view(await _release(state, release_id))
    await _release(state, release_id)
    try:
        async with state.engine.begin() as conn:
            row = await git.change_release(conn, release_id, changes)
    except git.ReleaseNameTaken:
        raise Problem(409, f"Release {changes['name']} already exists") from None
    if row is None:  # deleted meanwhile
        raise Problem(404, f"Release {release_id} not found")
    return release_view(row)


@router.delete("/{release_id}", status_code=204)
async def delete_release(release_id: int, state: State) -> Response:
    """Forget a release and its stored tests."""
    await _release(state, release_id)
    async with state.engine.begin() as conn:
        gone = await conn.execute(releases.delete().where(releases.c.id == release_id))
    if not gone.rowcount:
        raise Problem(404, f"Release {release_id} not found")
    return Response(status_code=204)


@router.get("/{release_id}/tests")
async def list_tests(
    release_id: int,
    state: State,
    file: Annotated[str | None, Query(min_length=1, max_length=1024, pattern="^[^\x00]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 100_000,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[dict[str, Any]]:
    """The release's stored tests, by node id (pytest's form, relative to the repo root)."""
    await _release(state, release_id)
    async with autocommit(state.engine) as conn:
        rows = await git.list_tests(conn, release_id, file=file, limit=limit, offset=offset)
    return [test_view(r) for r in rows]
