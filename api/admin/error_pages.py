"""Errors on the admin page's paths answered as pages: the API's problem, rendered for people."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.admin import session
from api.admin.pages import SECURITY_HEADERS, render
from api.admin.session import Session
from api.crash_guard import Page
from api.problems import Problem
from api.state import get_state

Handler = Callable[[Request, Any], Response | Awaitable[Response]]
# The problem handlers (api.problems) whose answers a browser on the admin page gets as a page.
DATABASE_ERRORS = (sa_exc.DBAPIError, sa_exc.TimeoutError)
PAGE_ERRORS = (Problem, RequestValidationError, StarletteHTTPException, *DATABASE_ERRORS)
KEPT_HEADERS = ("retry-after", "allow")
STATIC_PREFIX = "/admin/static/"

# What the crash guard answers there: the app's templates may be what failed.
CRASH_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Internal server error \xc2\xb7 syncbus admin</title>
<link rel="stylesheet" href="/admin/static/admin.css"></head>
<body><main id="main"><h1>Internal server error</h1>
<p class="error" role="alert">Something went wrong on our side; it has been logged.
Try again, or go back to <a href="/admin/jobs">the jobs</a>.</p></main></body></html>
"""


def is_admin_page(path: str) -> bool:
    """A path of the admin page (its static assets excepted)."""
    return (path == "/admin" or path.startswith("/admin/")) and not path.startswith(STATIC_PREFIX)


def crash_page(path: str) -> Page | None:
    """The crash guard's answer on an admin page (``api.crash_guard``)."""
    if not is_admin_page(path):
        return None
    return CRASH_PAGE, {"content-type": "text/html; charset=utf-8", **SECURITY_HEADERS}


def install(app: FastAPI) -> None:
    """Wrap the problem handlers ``api.problems.install`` registered (it must run first)."""
    for kind in PAGE_ERRORS:
        app.add_exception_handler(kind, _as_page(app.exception_handlers[kind]))


def _as_page(answer: Handler) -> Handler:
    async def handler(request: Request, exc: Any) -> Response:
        problem = answer(request, exc)  # may raise: the crash guard answers then
        if inspect.isawaitable(problem):
            problem = await problem
        if not is_admin_page(request.url.path):
            return problem
        body = orjson.loads(bytes(problem.body))
        headers = {k: v for k, v in problem.headers.items() if k in KEPT_HEADERS}
        context = {"title": body.get("title", "Error"), "message": body.get("detail", "")}
        status = problem.status_code
        # The database may be what failed: then the page is shown as to a stranger.
        known = None if isinstance(exc, DATABASE_ERRORS) else await _session(request)
        return render(request, "error.html", known, context, status_code=status, headers=headers)

    return handler


async def _session(request: Request) -> Session | None:
    """The browser's session, for the page's navigation; None when it cannot be read."""
    try:
        return await session.current(await get_state(request), request)
    except DATABASE_ERRORS:
        return None
