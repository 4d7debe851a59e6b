"""The admin page (/admin): server-rendered pages over the same rules as the API."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from schemas.settings import Settings


def install(app: FastAPI, settings: Settings) -> None:
    """Mount the admin page's routes and static assets on ``app``."""
    # Imported here: api.auth uses api.admin.session, and these routes use api.auth.
    from api.admin import (
        error_pages,
        pages,
        routes_auth,
        routes_domains,
        routes_jobs,
        routes_schedules,
    )

    error_pages.install(app)
    app.add_exception_handler(pages.SignInRequired, pages.sign_in_required)
    app.add_exception_handler(pages.Forbidden, pages.forbidden)
    for module in (routes_auth, routes_jobs, routes_schedules, routes_domains):
        app.include_router(module.router)
    static = Path(__file__).parent / "static"
    app.mount("/admin/static", StaticFiles(directory=static), name="admin-static")
