"""Synchronizer CSRF tokens: derived from the session's secret token, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac

FIELD = "csrf_token"


def token_for(session_token: str) -> str:
    """The session's CSRF token: only a holder of the cookie's value can compute it, and the
    cookie is HttpOnly, so another site's page cannot read either."""
    return hmac.new(session_token.encode(), b"syncbus admin csrf", hashlib.sha256).hexdigest()


def valid(session_token: str, presented: str | None) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(token_for(session_token).encode(), presented.encode())
