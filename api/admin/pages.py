"""What every admin page shares: templates, security headers, the session and CSRF checks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from api.admin import csrf
from api.admin.session import COOKIE, Session, current
from api.state import ApiState, get_state

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value is not None else "—"


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


templates.env.filters["when"] = _when
templates.env.filters["seconds"] = _seconds

LOGIN_PATH = "/admin/login"

# Scripts and styles from this host only, none inline; no framing; no referrer leaks.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

State = Annotated[ApiState, Depends(get_state)]


class SignInRequired(Exception):
    """No live session: a page answers with a redirect to the sign-in form."""


class Forbidden(Exception):
    """A form without its session's CSRF token (or without a session): 403, nothing done."""


async def signed_in(request: Request, state: State) -> Session:
    session = await current(state, request)
    if session is None:
        raise SignInRequired
    return session


async def form_checked(request: Request, state: State) -> Session:
    """The session of a state-changing form whose CSRF token matches it (checked first: a
    forged form does not even restart the session's idle clock)."""
    token = request.cookies.get(COOKIE, "")
    presented = (await request.form()).get(csrf.FIELD)
    if not csrf.valid(token, presented if isinstance(presented, str) else None):
        raise Forbidden
    session = await current(state, request)
    if session is None:
        raise Forbidden
    return session


SignedIn = Annotated[Session, Depends(signed_in)]
FormChecked = Annotated[Session, Depends(form_checked)]


def render(
    request: Request,
    name: str,
    session: Session | None,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    full = {
        "csrf_field": csrf.FIELD,
        "csrf_token": csrf.token_for(session.token) if session is not None else "",
        "signed_in": session is not None,
        "path": request.url.path,
        **context,
    }
    return templates.TemplateResponse(
        request,
        name,
        full,
        status_code=status_code,
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def redirect(path: str) -> RedirectResponse:
    """303 See Other: after a form, the browser GETs ``path`` (never carrying a secret)."""
    return RedirectResponse(path, status_code=303, headers=SECURITY_HEADERS)


def sign_in_required(request: Request, exc: Exception) -> RedirectResponse:
    return redirect(LOGIN_PATH)


def forbidden(request: Request, exc: Exception) -> HTMLResponse:
    return render(
        request,
        "error.html",
        None,
        {
            "title": "Refused",
            "message": "This form is missing its security token, or your session ended. "
            "Reload the page (or sign in again) and retry.",
        },
        status_code=403,
    )
