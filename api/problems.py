"""Errors as RFC 9457 problem details; 500s never carry internals (see api.crash_guard)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.supasaasy import SupasaasyError, closing_unless_read, is_supasaasy_path
from db.errors import is_transient, sqlstate

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title
        self.headers = headers
        self.extra = extra


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def validation_problem(
    errors: Iterable[Mapping[str, Any]], *, prefix: tuple[str, ...] = ()
) -> Problem:
    """A 422 from pydantic/FastAPI validation errors: ``loc: msg`` of the first, all listed."""
    items = [
        {"loc": [*prefix, *(str(p) for p in err.get("loc", ()))], "msg": err.get("msg", "")}
        for err in errors
    ]
    first = items[0] if items else {"loc": [], "msg": "invalid request"}
    return Problem(422, f"{'.'.join(first['loc']) or 'body'}: {first['msg']}", errors=items)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem document."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        if is_supasaasy_path(request.url.path):
            message = exc.detail[:1].upper() + exc.detail[1:]
            refused = SupasaasyError(exc.status, message, exc.headers)
            return closing_unless_read(request, refused).response()
        return problem_response(
            exc.status, exc.detail, title=exc.title, headers=exc.headers, **exc.extra
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problem = validation_problem(exc.errors())
        if is_supasaasy_path(request.url.path):
            return _supasaasy(request, 400, problem.detail, None)
        return problem_response(problem.status, problem.detail, **problem.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None
        if is_supasaasy_path(request.url.path):
            return _supasaasy(request, exc.status_code, str(exc.detail), headers)
        return problem_response(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(sa_exc.DBAPIError)
    @app.exception_handler(sa_exc.TimeoutError)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        if not is_transient(exc):
            raise exc  # a bug: api.crash_guard answers 500 and logs it
        log.warning(
            "database unavailable on %s %s: %s", request.method, request.url.path, sqlstate(exc)
        )
        detail, headers = "the database is unavailable; try again shortly", {"Retry-After": "5"}
        if is_supasaasy_path(request.url.path):
            return _supasaasy(request, 503, detail, headers)
        return problem_response(503, detail, headers=headers)


def _supasaasy(
    request: Request, status: int, message: str, headers: dict[str, str] | None
) -> JSONResponse:
    """seed 001's routes answer every error as supasaasy does (``api.supasaasy``), also
    those the router gives (405 for another method, 404 for a path it does not know)."""
    refused = SupasaasyError(status, message[:1].upper() + message[1:].lower(), headers)
    return closing_unless_read(request, refused).response()
