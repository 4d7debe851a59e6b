"""Sign in (the admin key or PIN, under the failed-authentication limit) and sign out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from api.admin.pages import FormChecked, State, redirect, render
from api.admin.session import close_session, current, open_session
from api.auth import authenticated
from api.problems import Problem
from api.state import ApiState
from schemas.signing import secret_matches

router = APIRouter(prefix="/admin", include_in_schema=False)

HOME = "/admin/jobs"


def _credential_kind(state: ApiState, presented: str) -> str:
    """'key' or 'pin' for a right credential (both checked, in constant time); else 401."""
    is_key = secret_matches(state.settings.admin_api_keys, presented)
    is_pin = secret_matches(state.settings.admin_pins, presented)
    if is_key:
        return "key"
    if is_pin:
        return "pin"
    raise Problem(401, "wrong admin key or PIN")


@router.get("", response_class=HTMLResponse)
async def home() -> Response:
    return redirect(HOME)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, state: State) -> Response:
    if await current(state, request) is not None:
        return redirect(HOME)
    return render(request, "login.html", None, {"title": "Sign in"})


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    state: State,
    credential: Annotated[str, Form(max_length=512)] = "",
) -> Response:
    def refused(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        context = {"title": "Sign in", "error": message}
        return render(request, "login.html", None, context, status_code=status, headers=headers)

    if not credential:
        return refused(400, "Enter the admin key or PIN.")
    try:
        kind = await authenticated(
            state, request, lambda: _credential_kind(state, credential), in_body=True
        )
    except Problem as problem:
        if problem.status == 429:
            return refused(429, "Too many failed sign-ins from this address; wait and retry.",
                           headers=problem.headers)  # fmt: skip
        return refused(401, "Wrong admin key or PIN.")
    response = redirect(HOME)
    await open_session(state, request, response, kind)
    return response


@router.post("/logout", response_class=HTMLResponse)
async def logout(session: FormChecked, state: State) -> Response:
    response = redirect("/admin/login")
    await close_session(state, session, response)
    return response
