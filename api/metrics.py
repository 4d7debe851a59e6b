"""The api's Prometheus metrics: /metrics and the HTTP middleware that feeds it."""

from __future__ import annotations

from fastapi import FastAPI

from schemas.settings import Settings


def install(app: FastAPI, settings: Settings) -> None:
    """Serve /metrics on ``app`` and count its HTTP requests."""
