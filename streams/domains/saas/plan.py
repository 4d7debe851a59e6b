"""Before a saas sync fetches anything: the app, its credentials, and each collection's mode."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from db import saas
from schemas.saas import CONNECTORS, ConnectorSpec, ResourceSpec, own_secret, secret_prefix
from schemas.settings import Settings
from streams.domains.base import DomainError
from streams.domains.saas.connector import Connector
from streams.domains.saas.stripe import StripeConnector
from streams.sources.http import SourceClient
from streams.sources.ratelimit import SHARED_BUCKETS, account_key
from streams.sources.retry import STRIPE_RESPONSES, ResponseClassifier, RetryPolicy

CONNECTOR_CLASSES: dict[str, type[Connector]] = {"stripe": StripeConnector}
CLASSIFIERS: dict[str, ResponseClassifier] = {"stripe": STRIPE_RESPONSES}


@dataclass
class CollectionPlan:
    """One collection of this run: how it is synced and, once done, what happened."""

    resource: ResourceSpec
    mode: str  # "full" or "incremental"
    cursor: int | None  # unix seconds of the last successful sync's start
    error: str | None = None
    processed: int = 0


@dataclass
class Plan:
    """A run of one app: its connector, the sync's start (the next cursor) and collections."""

    app: dict[str, Any]
    spec: ConnectorSpec
    connector: Connector
    started: datetime
    requested_mode: str
    collections: list[CollectionPlan]
    notes: list[str] = field(default_factory=list)

    @property
    def sync_from(self) -> int | None:
        day = self.app["sync_from"]
        return int(datetime.combine(day, time(), UTC).timestamp()) if day else None

    def collection(self, resource: ResourceSpec) -> CollectionPlan | None:
        return next((c for c in self.collections if c.resource == resource), None)


async def make_plan(
    engine: AsyncEngine, settings: Settings, app_key: str, mode: str, resource_types: list[str]
) -> Plan:
    """Read the app and its collections' state; DomainError for what makes the run pointless."""
    async with engine.connect() as conn:
        app = await saas.get_app(conn, app_key)
        if app is None:
            raise DomainError(f"unknown app_key: {app_key}")
        spec = CONNECTORS[app["connector"]]
        resources = spec.run_resources(list(app["resources"]), resource_types)
        cursors = {}
        for resource in resources:
            state = await saas.collection_state(conn, app_key, resource.collection_key)
            cursor = state["cursor"] if state else None
            cursors[resource.resource_type] = int(cursor) if cursor and cursor.isdigit() else None
    if not own_secret(spec.name, app["api_key_env"]):  # an app stored before the rule
        raise DomainError(
            f"api_key_env {app['api_key_env']} does not start with {secret_prefix(spec.name)}: "
            f"an app reads only its connector's secrets (set another with PATCH /v1/apps/{app_key})"
        )
    api_key = os.environ.get(app["api_key_env"], "").strip()
    if not api_key:
        raise DomainError(
            f"the secret variable {app['api_key_env']} is not set in the worker's environment"
        )
    connector = CONNECTOR_CLASSES[spec.name](
        _client(settings, spec, api_key), app["api_base"], api_key
    )
    collections: list[CollectionPlan] = []
    for resource in resources:
        cursor = cursors[resource.resource_type]
        parent = next((c for c in collections if c.resource.resource_type == resource.parent), None)
        if parent is not None:  # synced with its parent, in the parent's mode
            collections.append(CollectionPlan(resource, parent.mode, parent.cursor))
            continue
        incremental = mode == "incremental" and resource.incremental and cursor is not None
        collections.append(
            CollectionPlan(resource, "incremental" if incremental else "full", cursor)
        )
    return Plan(dict(app), spec, connector, datetime.now(UTC), mode, collections)


def _client(settings: Settings, spec: ConnectorSpec, api_key: str) -> SourceClient:
    """The account's client: retries, its shared rate limit, the key never in a message."""
    return SourceClient(
        httpx.AsyncClient(follow_redirects=False),
        timeout_s=settings.saas_request_timeout_s,
        retry=RetryPolicy(
            attempts=settings.saas_retries + 1,
            max_wait_s=settings.saas_max_retry_wait_s,
            max_wait_name="SYNCBUS_SAAS_MAX_RETRY_WAIT_S",
        ),
        classifier=CLASSIFIERS.get(spec.name, ResponseClassifier()),
        bucket=SHARED_BUCKETS.get(
            account_key(spec.name, api_key), rate=settings.stripe_requests_per_s
        ),
        secrets=(api_key,),
    )
