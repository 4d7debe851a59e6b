"""The admin page's cookie session: a random token in an HttpOnly cookie, its hash in PostgreSQL."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from fastapi import Request, Response

from api.security import in_networks
from api.state import ApiState
from db import admin_sessions

COOKIE = "syncbus_admin"
PATH = "/"  # the SSE streams under /v1 and /api need it too (GET only: api.auth)


@dataclass(frozen=True)
class Session:
    """A signed-in browser: its cookie's token (for the CSRF token) and what opened it."""

    token: str
    credential: str  # 'key' or 'pin'

    @property
    def token_sha256(self) -> str:
        return token_hash(self.token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def idle_seconds(state: ApiState) -> float:
    return state.settings.admin_session_idle_minutes * 60


def over_https(state: ApiState, request: Request) -> bool:
    """The browser's connection is HTTPS: ours, or a trusted proxy's that says so."""
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else None
    proto = request.headers.get("x-forwarded-proto", "")
    trusted = in_networks(peer, state.settings.internal_sync_trusted_proxies)
    return trusted and proto.split(",")[0].strip().lower() == "https"


async def current(state: ApiState, request: Request) -> Session | None:
    """The request's live session (its idle clock restarted), or None."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 128:
        return None
    async with state.engine.begin() as conn:
        credential = await admin_sessions.use(conn, token_hash(token), idle_seconds(state))
    return Session(token, credential) if credential is not None else None


async def open_session(state: ApiState, request: Request, response: Response, kind: str) -> None:
    """Start a session for the credential ``kind`` ('key' or 'pin') and set its cookie."""
    session = Session(secrets.token_urlsafe(32), kind)
    async with state.engine.begin() as conn:
        await admin_sessions.forget_idle(conn, idle_seconds(state))
        await admin_sessions.open_session(conn, session.token_sha256, kind)
    response.set_cookie(
        COOKIE,
        session.token,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=over_https(state, request),
    )


async def close_session(state: ApiState, session: Session, response: Response) -> None:
    async with state.engine.begin() as conn:
        await admin_sessions.close(conn, session.token_sha256)
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
