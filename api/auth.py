"""Credentials at the edge: admin (Bearer key, X-Admin-PIN, or the admin page's session cookie
on reads) and seed 004's signed sender."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPBearer

from api.admin import session as admin_session
from api.problems import Problem
from api.security import client_address, in_networks, timestamp_fresh
from api.state import ApiState, get_state
from db import rate_limit
from db.engine import autocommit
from schemas.settings import Settings
from schemas.signing import secret_matches, verify_push_signature

log = logging.getLogger(__name__)

T = TypeVar("T")

ADMIN_HINT = "admin credentials required: 'Authorization: Bearer <ADMIN_API_KEY>' or 'X-Admin-PIN'"


def admin_ok(settings: Settings, request: Request) -> bool:
    """True when the request carries a valid admin key or PIN (constant-time checks)."""
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    key_ok = scheme.lower() == "bearer" and secret_matches(settings.admin_api_keys, token.strip())
    pin = request.headers.get("x-admin-pin")
    pin_ok = pin is not None and secret_matches(settings.admin_pins, pin)
    return key_ok or pin_ok


# Declared for the OpenAPI document (Swagger UI's "Authorize"); the check reads the headers.
_ADMIN_KEY = HTTPBearer(auto_error=False, scheme_name="AdminKey", description="`ADMIN_API_KEY`")
_ADMIN_PIN = APIKeyHeader(
    name="X-Admin-PIN", auto_error=False, scheme_name="AdminPin", description="`ADMIN_PIN`"
)


# Only reads take the admin page's cookie: the browser sends it along with any request to
# this host, so a write authenticated by it alone could be forged by another page (the page's
# own forms carry a CSRF token instead). Reads include the SSE streams, which the browser's
# EventSource opens without a way to set headers.
COOKIE_METHODS = frozenset({"GET", "HEAD"})


async def browser_session(state: ApiState, request: Request) -> bool:
    """True for a read with no credential header and a live admin page session cookie."""
    if request.method not in COOKIE_METHODS or admin_session.COOKIE not in request.cookies:
        return False
    if any(h in request.headers for h in CREDENTIAL_HEADERS):
        return False  # a presented header is judged (and counted) on its own
    return await admin_session.current(state, request) is not None


async def require_admin(
    request: Request,
    state: Annotated[ApiState, Depends(get_state)],
    _key: Annotated[object, Depends(_ADMIN_KEY)],
    _pin: Annotated[object, Depends(_ADMIN_PIN)],
) -> None:
    if await browser_session(state, request):
        return
    hint = ADMIN_HINT
    if request.method not in COOKIE_METHODS and admin_session.COOKIE in request.cookies:
        hint += "; the admin page's session cookie is accepted on GET only"

    def check() -> None:
        if not admin_ok(state.settings, request):
            raise Problem(401, hint, headers={"WWW-Authenticate": "Bearer"})

    await authenticated(state, request, check)


class WrongCredential(Problem):
    """A credential was presented and is wrong, answered with another status than 401 (seed
    002 answers a wrong PIN with 403); counted as a failed authentication all the same."""


async def require_pin(
    request: Request,
    state: Annotated[ApiState, Depends(get_state)],
    _pin: Annotated[object, Depends(_ADMIN_PIN)],
) -> None:
    """Seed 002's ``X-Admin-PIN`` (the admin Bearer key works too): missing 401, wrong 403."""
    if await browser_session(state, request):
        return

    def check() -> None:
        if admin_ok(state.settings, request):
            return
        if "x-admin-pin" in request.headers:
            raise WrongCredential(403, "Invalid admin PIN")
        raise Problem(401, "X-Admin-PIN header required")

    await authenticated(state, request, check)


# Headers that carry a credential: a request with none of them guesses nothing.
CREDENTIAL_HEADERS = ("authorization", "x-admin-pin", "x-sync-signature", "x-signature")


async def authenticated(
    state: ApiState, request: Request, check: Callable[[], T], *, in_body: bool = False
) -> T:
    """``check()`` (which raises Problem(401) for bad credentials) under the limit on failed
    authentication per client address: wrong credentials are counted in PostgreSQL, and an
    address over the limit gets 429 whatever it presents, so a guess that would be right
    tells it nothing either. ``in_body``: the credential came in the body (the admin page's
    sign-in form), not in a header."""
    limit = _failure_limit(state.settings)
    presented = in_body or any(h in request.headers for h in CREDENTIAL_HEADERS)
    if not presented or limit is None:
        return check()
    bucket = f"auth:{_address(state.settings, request)}"
    if not state.clear_buckets.is_clear(bucket):
        async with autocommit(state.engine) as conn:
            decision = await rate_limit.peek(conn, bucket, limit)
        if not decision.allowed:
            raise _too_many(decision)
        if decision.remaining == limit.count:
            state.clear_buckets.saw_clear(bucket)
    try:
        return check()
    except Problem as refused:
        if refused.status == 401 or isinstance(refused, WrongCredential):
            state.clear_buckets.forget(bucket)
            async with state.engine.begin() as conn:
                decision = await rate_limit.hit(conn, bucket, limit)
            if not decision.allowed or decision.remaining == 0:
                log.warning("failed authentication limit reached for %s", bucket[5:])
        raise


async def note_failed_authentication(state: ApiState, request: Request) -> None:
    """Count one wrong credential from the caller's address (a route that checks its own,
    such as a webhook's signature)."""
    limit = _failure_limit(state.settings)
    if limit is None:
        return
    bucket = f"auth:{_address(state.settings, request)}"
    state.clear_buckets.forget(bucket)
    async with state.engine.begin() as conn:
        await rate_limit.hit(conn, bucket, limit)


def _failure_limit(settings: Settings) -> rate_limit.Limit | None:
    per_minute = settings.auth_failures_per_minute
    return rate_limit.Limit(per_minute, 60.0) if per_minute else None


def _address(settings: Settings, request: Request) -> str:
    peer = request.client.host if request.client else None
    forwarded = request.headers.get("x-forwarded-for")
    return client_address(peer, forwarded, settings.internal_sync_trusted_proxies) or "unknown"


def _too_many(decision: rate_limit.Decision) -> Problem:
    return Problem(
        429,
        f"too many failed authentication attempts from this address; retry in "
        f"{decision.retry_after} s",
        headers={"Retry-After": decision.retry_after},
    )


AdminOnly = Depends(require_admin)
PinOnly = Depends(require_pin)


def check_sender_network(settings: Settings, request: Request) -> None:
    """IP allowlist and the mTLS-verified header of seed 004 (403 when refused)."""
    peer = request.client.host if request.client else None
    address = client_address(
        peer, request.headers.get("x-forwarded-for"), settings.internal_sync_trusted_proxies
    )
    if settings.internal_sync_allowed_ips and not in_networks(
        address, settings.internal_sync_allowed_ips
    ):
        log.warning("internal sync refused for address %s", address)
        raise Problem(403, f"address {address} is not allowed to use the internal sync API")
    if settings.internal_sync_require_mtls and not _mtls_verified(settings, peer, request):
        raise Problem(
            403,
            "mutual TLS verification is required (x-internal-mtls-verified: 1 from a proxy "
            "in INTERNAL_SYNC_TRUSTED_PROXIES)",
        )


def _mtls_verified(settings: Settings, peer: str | None, request: Request) -> bool:
    """The proxy that terminated mTLS says so; the header counts only when the TCP peer is
    that proxy, since any client that reaches the api directly could send it."""
    return request.headers.get("x-internal-mtls-verified") == "1" and in_networks(
        peer, settings.internal_sync_trusted_proxies
    )


def check_signature(settings: Settings, request: Request, body_hash: str) -> str | None:
    """Verify ``x-sync-*`` headers over a body whose hex sha256 is ``body_hash``; return the
    signed request id.

    Returns None when signatures are switched off and no request id header was sent.
    """
    headers = request.headers
    request_id = headers.get("x-sync-request-id")
    if not settings.internal_sync_require_signature:
        return request_id
    timestamp = headers.get("x-sync-timestamp")
    signature = headers.get("x-sync-signature")
    missing = [
        name
        for name, value in (
            ("x-sync-timestamp", timestamp),
            ("x-sync-request-id", request_id),
            ("x-sync-signature", signature),
        )
        if not value
    ]
    if missing:
        raise Problem(401, f"missing signature header(s): {', '.join(missing)}")
    assert timestamp is not None and request_id is not None and signature is not None
    if not settings.internal_sync_shared_secrets:
        log.error("INTERNAL_SYNC_SHARED_SECRET is not set; refusing signed requests")
        raise Problem(503, "internal sync is not configured on this server")
    if not timestamp_fresh(timestamp, time.time(), settings.internal_sync_allowed_skew_seconds):
        raise Problem(
            401,
            "x-sync-timestamp is outside the allowed window of "
            f"{settings.internal_sync_allowed_skew_seconds}s (unix seconds expected)",
        )
    if not verify_push_signature(
        settings.internal_sync_shared_secrets, timestamp, request_id, body_hash, signature
    ):
        raise Problem(401, "invalid x-sync-signature")
    return request_id
