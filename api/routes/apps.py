"""``/v1/apps``: the saas domain's app instances (seed 001), alongside ``SYNCBUS_APPS_FILE``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import ValidationError
from sqlalchemy.engine import RowMapping

from api.auth import AdminOnly
from api.problems import Problem, validation_problem
from api.state import ApiState, get_state
from db import saas
from db.engine import autocommit
from schemas.saas import APP_KEY, AppConfig, AppList, AppUpdate, AppView, missing_secrets

router = APIRouter(prefix="/v1/apps", tags=["saas apps"], dependencies=[AdminOnly])
State = Annotated[ApiState, Depends(get_state)]


def app_view(row: RowMapping) -> AppView:
    return AppView.model_validate(dict(row))


def _checked(config: AppConfig) -> dict[str, Any]:
    """The stored form, or 422 when a secret variable it names is not set here."""
    values = config.resolved()
    missing = missing_secrets(values)
    if missing:
        raise Problem(
            422, f"the secret variable {' and '.join(missing)} is not set in the api's environment"
        )
    return values


def _key(app_key: str) -> str:
    if not APP_KEY.fullmatch(app_key):
        raise Problem(404, "no such app: an app_key matches ^[A-Za-z0-9_-]{1,64}$")
    return app_key


async def _app(state: ApiState, app_key: str) -> RowMapping:
    _key(app_key)
    async with autocommit(state.engine) as conn:
        row = await saas.get_app(conn, app_key)
    if row is None:
        raise Problem(404, f"no app '{app_key}'")
    return row


@router.get("", response_model=AppList)
async def list_apps(state: State) -> AppList:
    async with autocommit(state.engine) as conn:
        rows = await saas.list_apps(conn)
    return AppList(items=[app_view(r) for r in rows])


@router.post("", status_code=201, response_model=AppView)
async def create_app(body: AppConfig, state: State, response: Response) -> AppView:
    values = _checked(body)
    async with state.engine.begin() as conn:
        row = await saas.create_app(conn, values, origin="api")
    if row is None:
        raise Problem(409, f"app '{body.app_key}' exists; change it with PATCH")
    response.headers["Location"] = f"/v1/apps/{body.app_key}"
    return app_view(row)


@router.get("/{app_key}", response_model=AppView)
async def get_app(app_key: str, state: State) -> AppView:
    return app_view(await _app(state, app_key))


@router.patch("/{app_key}", response_model=AppView)
async def update_app(app_key: str, body: AppUpdate, state: State) -> AppView:
    current = await _app(state, app_key)
    merged = {**dict(current), **body.model_dump(exclude_unset=True)}
    fields = set(AppConfig.model_fields)
    try:
        config = AppConfig.model_validate({k: v for k, v in merged.items() if k in fields})
    except ValidationError as exc:
        raise validation_problem(exc.errors(include_input=False)) from None
    values = _checked(config)
    async with state.engine.begin() as conn:
        row = await saas.put_app(conn, values, origin="api")
    return app_view(row)


@router.delete("/{app_key}", status_code=204)
async def delete_app(app_key: str, state: State) -> Response:
    _key(app_key)
    async with state.engine.begin() as conn:
        if not await saas.delete_app(conn, app_key):
            raise Problem(404, f"no app '{app_key}'")
    return Response(status_code=204)
