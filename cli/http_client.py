"""The CLI's HTTP clients of the api: the URL and key checked first, URLs shown without
their credentials."""

from __future__ import annotations

import httpx


class BadOption(ValueError):
    """A --url or key that no request could carry: the command's usage error (exit 2)."""


def checked_url(url: str) -> httpx.URL:
    """``url`` as httpx reads it; BadOption unless it is an http(s) URL with a host."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise BadOption(f"invalid --url: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise BadOption("invalid --url: give http(s)://host[:port][/path]")
    return parsed


def admin_client(base_url: str, admin_key: str, *, timeout: float = 30) -> httpx.Client:
    """A client that sends ``admin_key`` as a Bearer token to ``base_url``."""
    if not (admin_key.isascii() and admin_key.isprintable()):
        raise BadOption("the admin key must be printable ASCII (it travels in a header)")
    headers = {"Authorization": f"Bearer {admin_key}"}
    return httpx.Client(base_url=checked_url(base_url), headers=headers, timeout=timeout)


def shown(url: str) -> str:
    """``url`` for a message: without a user name or password it may hold."""
    try:
        return str(httpx.URL(url).copy_with(username=None, password=None))
    except httpx.InvalidURL:
        return "--url"
