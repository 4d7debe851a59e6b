"""The admin page (/admin): server-rendered pages over the same rules as the API."""

from __future__ import annotations

from fastapi import FastAPI

from schemas.settings import Settings


def install(app: FastAPI, settings: Settings) -> None:
    """Mount the admin page's routes and static assets on ``app``."""
