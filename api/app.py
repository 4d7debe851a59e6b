"""The FastAPI application factory and its lifespan (engine, producer, relay, progress hub)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter

from api import admin, config_files, docs_ui, metrics, openapi, problems, supasaasy
from api.admin import error_pages
from api.body_limit import BodyLimitMiddleware
from api.crash_guard import CrashGuardMiddleware
from api.live import ProgressHub
from api.routes import (
    alerts,
    apps,
    dictionary,
    git,
    health,
    models,
    releases,
    saas,
    saas_webhook,
    schedules,
    v1,
)
from api.state import ApiState
from api.stored_events import log_if_it_ended, watch_stored_events
from db import git as git_store
from db import saas as saas_store
from db.engine import create_engine
from db.errors import describe, is_transient
from producers.kafka import AsyncProducer, ensure_topics
from producers.outbox import OutboxRelay
from schemas.settings import Settings, get_settings
from schemas.topics import Topics

log = logging.getLogger(__name__)

DICTIONARY_PUSH_PATH = "/api/internal/dictionary-upserts"


async def seed_config_files(engine: AsyncEngine, settings: Settings, done: asyncio.Event) -> None:
    """The apps of ``SYNCBUS_APPS_FILE`` and the releases of ``SYNCBUS_RELEASES_FILE``
    (checked by ``syncbus api`` before it starts), once PostgreSQL answers: an outage is
    waited out with backoff and said once."""
    if not (settings.apps_file or settings.releases_file):
        done.set()
        return
    said = False
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential_jitter(initial=0.5, max=5),
    ):
        with attempt:
            try:
                await _seed(engine, settings)
            except Exception as exc:
                if is_transient(exc) and not said:
                    said = True
                    log.warning("the config files wait for PostgreSQL (%s)", describe(exc))
                raise
    done.set()


async def _seed(engine: AsyncEngine, settings: Settings) -> None:
    async with engine.begin() as conn:
        if settings.apps_file:
            for values in config_files.load_apps(settings.apps_file):
                await saas_store.seed_app(conn, values)
            log.info("apps of %s are in place", settings.apps_file)
        if settings.releases_file:
            path, branch = settings.releases_file, settings.git_repo_branch
            for values in config_files.load_releases(path, branch):
                await git_store.seed_release(conn, values)
            log.info("releases of %s are in place", path)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the api; resources start in the lifespan, not at import."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        topics = Topics(settings.topic_prefix)
        try:
            await asyncio.to_thread(
                ensure_topics,
                settings.kafka_bootstrap_servers,
                topics.all(),
                settings.topic_partitions,
            )
        except Exception as exc:
            log.warning(
                "the broker at %s (KAFKA_BOOTSTRAP_SERVERS) is not reachable yet (%s); "
                "accepted requests wait in the outbox until it is",
                settings.kafka_bootstrap_servers,
                exc,
            )
        engine = create_engine(settings)
        producer = AsyncProducer(settings.kafka_bootstrap_servers)
        hub = ProgressHub(
            settings.kafka_bootstrap_servers, topics.progress, settings.kafka_fetch_wait_ms
        )
        hub.start()
        relay = OutboxRelay(engine, producer)
        state = ApiState(settings, topics, engine, producer, relay, hub)
        app.state.syncbus = state
        # In the background: a process waiting for PostgreSQL still answers and stops on a
        # signal; /readyz says 503 until the files are in.
        seeding = asyncio.create_task(
            seed_config_files(engine, settings, state.config_files_loaded)
        )
        stop = asyncio.Event()
        relay_task = asyncio.create_task(relay.run(settings.outbox_poll_ms / 1000, stop))
        stored_task = asyncio.create_task(
            watch_stored_events(engine, hub, settings.sse_db_poll_s, stop)
        )
        stored_task.add_done_callback(log_if_it_ended)
        # What start-up built (routes, models, clients) lives for good: keep it out of
        # every collection, so a full collection does not stall live SSE streams.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            stop.set()
            seeding.cancel()
            if state.background:
                await asyncio.wait(list(state.background), timeout=5)
            _, hanging = await asyncio.wait([relay_task, stored_task], timeout=5)
            for task in hanging:
                task.cancel()
            await asyncio.gather(*hanging, return_exceptions=True)
            hub.stop()
            await asyncio.to_thread(producer.close)
            await engine.dispose()

    app = FastAPI(
        title="syncbus",
        version="0.1.0",
        summary="Event-driven sync service: ingest API, Kafka, workers, PostgreSQL.",
        lifespan=lifespan,
        docs_url=None,  # served by api.docs_ui, without a CDN
        redoc_url=None,
    )
    problems.install(app)
    docs_ui.install(app)
    openapi.install(app)

    def body_limit(path: str) -> int | None:
        if path == DICTIONARY_PUSH_PATH:
            return settings.dictionary_max_body_bytes
        if path in saas.SYNC_PATHS or saas_webhook.WEBHOOK_PATH.fullmatch(path):
            return None  # supasaasy's 413 body, checked while reading (api.routes.saas)
        return settings.max_body_bytes

    app.add_middleware(BodyLimitMiddleware, limit_for=body_limit)
    metrics.install(app, settings)
    # Added last: the outermost of ours.
    app.add_middleware(
        CrashGuardMiddleware,
        page=lambda path: error_pages.crash_page(path) or supasaasy.crash_answer(path),
    )
    app.include_router(health.router)
    app.include_router(v1.router)
    app.include_router(schedules.router)
    app.include_router(alerts.router)
    app.include_router(apps.router)
    app.include_router(saas.router)
    app.include_router(saas_webhook.router)
    app.include_router(dictionary.router)
    app.include_router(models.router)
    app.include_router(git.router)
    app.include_router(releases.router)
    admin.install(app, settings)
    return app
