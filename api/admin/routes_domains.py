"""Each domain's page: the dictionary queue (seed 004), model catalogue health (seed 003),
releases and metadata sync (seed 002), app instances (seed 001), with their triggers."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.admin.pages import FormChecked, SignedIn, State, redirect, render
from api.admin.session import Session
from api.problems import Problem
from api.routes import apps as apps_api
from api.routes import dictionary as dictionary_api
from api.routes import git as git_api
from api.routes import models as models_api
from api.routes import releases as releases_api
from api.routes import saas as saas_api
from api.supasaasy import SupasaasyError, app_or_404
from db.model_health import HealthConfig, check_health
from schemas.git import MAX_INTERVAL_HOURS, ConfigureBody
from schemas.saas import APP_KEY

router = APIRouter(prefix="/admin", include_in_schema=False)

WINDOWS = (10, 60, 1440)


def _refused(request: Request, session: Session, status: int, message: str) -> Response:
    context = {"title": "Refused", "message": message}
    return render(request, "error.html", session, context, status_code=status)


@router.get("/dictionary", response_class=HTMLResponse)
async def dictionary_page(request: Request, state: State, session: SignedIn) -> Response:
    asked = request.query_params.get("window", "10")
    window = int(asked) if asked in {str(w) for w in WINDOWS} else 10
    answer = await dictionary_api.queue_stats(state, window)
    stats = orjson.loads(answer.body)
    context = {"title": "Dictionary queue", "stats": stats, "window": window, "windows": WINDOWS}
    return render(request, "dictionary.html", session, context)


@router.get("/models", response_class=HTMLResponse)
async def models_page(request: Request, state: State, session: SignedIn) -> Response:
    report = await asyncio.to_thread(
        check_health, state.settings.libpq_url, HealthConfig.from_settings(state.settings)
    )
    history = await models_api.sync_history(state, 20)
    context = {"title": "Model catalogue", "health": report, "history": history}
    return render(request, "models.html", session, context)


@router.post("/models/sync", response_class=HTMLResponse)
async def models_sync(request: Request, state: State, session: FormChecked) -> Response:
    try:
        answer = await models_api.trigger_sync(state)
    except Problem as refused:
        return _refused(request, session, refused.status, refused.detail)
    return redirect(f"/admin/jobs/{orjson.loads(answer.body)['syncLogId']}")


@router.get("/git", response_class=HTMLResponse)
async def git_page(request: Request, state: State, session: SignedIn) -> Response:
    context = {
        "title": "Releases and metadata sync",
        "status": await git_api.status(state),
        "history": await git_api.history(state, 20),
        "releases": await releases_api.list_releases(state),
    }
    return render(request, "git.html", session, context)


@router.post("/git/sync", response_class=HTMLResponse)
async def git_sync(request: Request, state: State, session: FormChecked) -> Response:
    try:
        started = await git_api.trigger_all(state)
    except Problem as refused:
        return _refused(request, session, refused.status, refused.detail)
    return redirect(f"/admin/jobs/{started['job_id']}")


@router.post("/git/releases/{release_id}/sync", response_class=HTMLResponse)
async def release_sync(
    release_id: str, request: Request, state: State, session: FormChecked
) -> Response:
    """The seed's per-release trigger (``POST .../trigger/{release_id}``)."""
    if not release_id.isascii() or not release_id.isdigit() or len(release_id) > 9:
        return _refused(request, session, 404, f"Release {release_id[:40]!r} not found")
    try:
        started = await git_api.trigger_release(int(release_id), state)
    except Problem as refused:
        return _refused(request, session, refused.status, refused.detail)
    return redirect(f"/admin/jobs/{started['job_id']}")


@router.post("/git/configure", response_class=HTMLResponse)
async def git_configure(request: Request, state: State, session: FormChecked) -> Response:
    """The seed's ``POST .../configure`` (the stored values win over the environment)."""
    form = await request.form()
    hours = form.get("interval_hours")
    try:
        body = ConfigureBody(
            enabled=form.get("enabled") == "on",
            interval_hours=float(hours) if isinstance(hours, str) and hours.strip() else None,
        )
        await git_api.configure(body, state)
    except ValueError:  # float()'s refusal, or ConfigureBody's (a pydantic ValidationError)
        limit = f"{MAX_INTERVAL_HOURS:g}"
        return _refused(request, session, 422, f"Every (hours): a number above 0, at most {limit}")
    except Problem as refused:
        return _refused(request, session, refused.status, refused.detail)
    return redirect("/admin/git")


@router.get("/apps", response_class=HTMLResponse)
async def apps_page(request: Request, state: State, session: SignedIn) -> Response:
    listing = await apps_api.list_apps(state)
    context: dict[str, Any] = {
        "title": "App instances",
        "apps": listing.items,
        "can_sync": session.credential == "key",
    }
    return render(request, "apps.html", session, context)


@router.post("/apps/{app_key}/sync", response_class=HTMLResponse)
async def app_sync(app_key: str, request: Request, state: State, session: FormChecked) -> Response:
    """supasaasy's ``POST /sync`` for one app, which takes the admin key and not the PIN."""
    if session.credential != "key":
        return _refused(
            request, session, 403, "Syncing an app needs a session opened with the admin key."
        )
    if not APP_KEY.fullmatch(app_key):
        return _refused(request, session, 404, f"No app {app_key!r}.")
    try:
        app = await app_or_404(state, app_key)
        job = await saas_api.start_sync(state, app, app["mode"], list(app["resources"]))
    except SupasaasyError as refused:
        return _refused(request, session, refused.status, refused.message)
    return redirect(f"/admin/jobs/{job['id']}")
