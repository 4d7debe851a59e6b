"""supasaasy's edge, as its clients know it: error bodies, the 1 MiB body limit, the per-key
rate limit with IETF RateLimit headers, and CORS for configured origins only."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import RowMapping
from starlette.requests import ClientDisconnect

from api.security import client_address
from api.state import ApiState
from db import rate_limit, saas
from db.engine import autocommit
from schemas.signing import secret_matches

MAX_BODY_BYTES = 1024 * 1024  # seed 001: "requests exceeding 1MB SHALL be rejected with 413"
RATE_POLICY = "sync"
CORS_METHODS = "POST, OPTIONS"
CORS_HEADERS = "authorization, content-type"


class SupasaasyError(Exception):
    """Answer ``{"error": message, "success": false}`` with ``status``."""

    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> JSONResponse:
        body = {"error": self.message, "success": False, **self.extra}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


CLOSE = {"Connection": "close"}


async def read_body(request: Request) -> bytes:
    """The body, refused (413) past 1 MiB whether or not ``Content-Length`` says so. An
    answer given before the whole body was read closes the connection: what is left of the
    body must not be read as the next request."""
    declared = request.headers.get("content-length", "").strip()
    if declared:
        if not (declared.isascii() and declared.isdigit()):
            raise SupasaasyError(400, "Invalid Content-Length header", CLOSE)
        if int(declared) > MAX_BODY_BYTES:
            raise SupasaasyError(413, "Request body too large", CLOSE)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise SupasaasyError(413, "Request body too large", CLOSE)
            chunks.append(chunk)
    except ClientDisconnect:
        raise SupasaasyError(400, "The client left before sending its body", CLOSE) from None
    request.state.body_read = True
    return b"".join(chunks)


def closing_unless_read(request: Request, refused: SupasaasyError) -> SupasaasyError:
    """An answer given before the body was read (a 401, a 429) closes the connection."""
    if _has_body(request) and not getattr(request.state, "body_read", False):
        refused.headers = {**refused.headers, **CLOSE}
    return refused


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length", "0").strip()
    return "transfer-encoding" in request.headers or length not in ("", "0")


SUPASAASY_PATH = re.compile(
    r"/(?:sync|functions/v1/sync|webhook/[^/]+|functions/v1/job-status/[^/]+|sync/jobs/[^/]+)"
)


def is_supasaasy_path(path: str) -> bool:
    """Paths whose errors are supasaasy's ``{"error", "success": false}``, not problems:
    exactly the routes seed 001 documents (``path`` percent-decoded, as routed)."""
    return SUPASAASY_PATH.fullmatch(path) is not None


CRASH_BODY = b'{"error":"Internal server error","success":false}'


def crash_answer(path: str) -> tuple[bytes, dict[str, str]] | None:
    """The crash guard's 500 on seed 001's routes (``api.crash_guard``): supasaasy's body."""
    if not is_supasaasy_path(path):
        return None
    return CRASH_BODY, {"content-type": "application/json"}


def bearer_key(state: ApiState, request: Request) -> str | None:
    """The admin key presented as ``Authorization: Bearer``, when it is a valid one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token if secret_matches(state.settings.admin_api_keys, token) else None


async def limit(state: ApiState, request: Request, key: str | None) -> dict[str, str]:
    """Spend one request of the caller's budget: per admin key (hashed, never stored) once
    authenticated, else per client address in a bucket of its own, so nobody spends a
    real key's budget by guessing. 429 past the limit; else the RateLimit headers."""
    settings = state.settings
    if key is not None:
        bucket = f"sync:key:{hashlib.sha256(key.encode()).hexdigest()[:32]}"
    else:
        peer = request.client.host if request.client else None
        forwarded = request.headers.get("x-forwarded-for")
        address = client_address(peer, forwarded, settings.internal_sync_trusted_proxies)
        bucket = f"sync:address:{address or 'unknown'}"
    policy = rate_limit.Limit(settings.sync_rate_limit, 60.0)
    async with state.engine.begin() as conn:
        decision = await rate_limit.hit(conn, bucket, policy)
    headers = ratelimit_headers(decision)
    if not decision.allowed:
        raise SupasaasyError(
            429, "Too many requests", headers={**headers, "Retry-After": decision.retry_after}
        )
    return headers


def ratelimit_headers(decision: rate_limit.Decision) -> dict[str, str]:
    """IETF ``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers)."""
    window = round(decision.limit.period_s)
    reset = max(0, round(decision.reset_s))
    return {
        "RateLimit-Policy": f'"{RATE_POLICY}";q={decision.limit.count};w={window}',
        "RateLimit": f'"{RATE_POLICY}";r={decision.remaining};t={reset}',
    }


def preflight(state: ApiState, request: Request) -> Response:
    """CORS only for a preflight from a configured origin (never ``*``): server-to-server
    callers authenticate with a Bearer key, not a browser's origin."""
    origin = request.headers.get("origin", "")
    if origin not in state.settings.cors_origins:
        return Response(status_code=204)
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": CORS_METHODS,
            "Access-Control-Allow-Headers": CORS_HEADERS,
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        },
    )


async def app_or_404(state: ApiState, app_key: str) -> RowMapping:
    """The app instance, or supasaasy's 404."""
    async with autocommit(state.engine) as conn:
        app = await saas.get_app(conn, app_key)
    if app is None:
        raise SupasaasyError(404, f"Unknown app_key: {app_key}")
    return app
