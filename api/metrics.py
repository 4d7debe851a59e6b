"""The api's Prometheus metrics: /metrics and the HTTP middleware that feeds it."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    disable_created_metrics,
    generate_latest,
)

from api.metrics_db import DatabaseMetrics
from api.metrics_http import HttpMetricsMiddleware
from api.state import ApiState
from schemas.settings import Settings

METRICS_PATH = "/metrics"


def install(app: FastAPI, settings: Settings) -> None:
    """Serve /metrics on ``app`` and count its HTTP requests."""
    # Counters and histograms without their *_created series: half the lines, no use here.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    app.add_middleware(HttpMetricsMiddleware, routes=app.router.routes)
    database = DatabaseMetrics()
    # This app's own: the process-wide registry holds the HTTP, SSE and process metrics.
    own = CollectorRegistry(auto_describe=False)
    own.register(database)

    # Unauthenticated like /healthz (it holds counts, no data); out of the OpenAPI document
    # like the other infrastructure pages.
    @app.get(METRICS_PATH, include_in_schema=False)
    async def metrics(request: Request) -> Response:
        state: ApiState | None = getattr(request.app.state, "syncbus", None)
        if state is not None:
            await database.refresh(state.engine)
        body = generate_latest(REGISTRY) + generate_latest(own)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
