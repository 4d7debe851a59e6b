"""The saas domain (seed 001, supasaasy): connectors' resources, app instances, the sync API."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.events import SyncMode
from schemas.json_value import Identifier
from schemas.schedules import check_cron

DOMAIN = "saas"
# Matched whole (``fullmatch``): ``$`` would let a trailing newline through.
APP_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


@dataclass(frozen=True)
class ResourceSpec:
    """One kind of object a connector syncs, stored under ``collection_key``. A resource
    with a ``parent`` is synced with it (subscription items with their subscription)."""

    resource_type: str
    collection_key: str
    incremental: bool = True
    parent: str | None = None
    parent_field: str | None = None  # the payload field naming the parent's id


@dataclass(frozen=True)
class ConnectorSpec:
    """What the platform knows of a connector without running it."""

    name: str
    resources: tuple[ResourceSpec, ...]
    default_api_base: str
    api_key_env_prefix: str
    webhook_secret_env_prefix: str
    # A change feed's (and webhooks') event types: type -> (resource type, "upsert"|"delete").
    events: dict[str, tuple[str, str]] = field(default_factory=dict)

    def resource(self, resource_type: str) -> ResourceSpec | None:
        return next((r for r in self.resources if r.resource_type == resource_type), None)

    @property
    def resource_types(self) -> tuple[str, ...]:
        return tuple(r.resource_type for r in self.resources)

    def children_of(self, resource_type: str) -> tuple[ResourceSpec, ...]:
        return tuple(r for r in self.resources if r.parent == resource_type)

    def run_resources(self, app_resources: list[str], asked: list[str]) -> list[ResourceSpec]:
        """The resources a run syncs, parents first: those asked for (all of the app's when
        none), a child's parent with it, and a parent's children that the app syncs."""
        wanted = set(asked or app_resources)
        for resource in self.resources:
            if resource.resource_type in wanted and resource.parent:
                wanted.add(resource.parent)
        for resource in self.resources:
            if resource.parent in wanted and resource.resource_type in app_resources:
                wanted.add(resource.resource_type)
        return [r for r in self.resources if r.resource_type in wanted]

    def tasks(self, app_resources: list[str], asked: list[str]) -> list[ResourceSpec]:
        """supasaasy's tasks of a run: its resources not synced with a parent."""
        return [r for r in self.run_resources(app_resources, asked) if r.parent is None]


STRIPE = ConnectorSpec(
    name="stripe",
    resources=(
        ResourceSpec("customer", "stripe_customer"),
        ResourceSpec("product", "stripe_product"),
        ResourceSpec("price", "stripe_price"),
        ResourceSpec("plan", "stripe_plan"),
        ResourceSpec("subscription", "stripe_subscription"),
        ResourceSpec(
            "subscription_item",
            "stripe_subscription_item",
            parent="subscription",
            parent_field="subscription",
        ),
    ),
    default_api_base="https://api.stripe.com",
    api_key_env_prefix="STRIPE_API_KEY_",
    webhook_secret_env_prefix="STRIPE_WEBHOOK_SECRET_",  # noqa: S106 (a variable's name)
    events={
        **{
            f"{kind}.{what}": (kind, "delete" if what == "deleted" else "upsert")
            for kind in ("customer", "product", "price", "plan")
            for what in ("created", "updated", "deleted")
        },
        # A canceled subscription is kept and archived: every event carries its state.
        **{
            f"customer.subscription.{what}": ("subscription", "upsert")
            for what in ("created", "updated", "deleted", "paused", "resumed")
        },
    },
)
CONNECTORS: dict[str, ConnectorSpec] = {STRIPE.name: STRIPE}


def task_key_of(collection_key: str) -> str:
    """The supasaasy task a collection is synced in: its parent's collection for a child
    (subscription items in their subscription's), else its own. From the connectors'
    resource trees, so a finished run's tasks do not depend on the app's resources now."""
    for spec in CONNECTORS.values():
        for resource in spec.resources:
            if resource.collection_key == collection_key and resource.parent:
                parent = spec.resource(resource.parent)
                return parent.collection_key if parent else collection_key
    return collection_key


class AppConfig(BaseModel):
    """One app instance: a SaaS account synced into ``supasaasy.entities`` under
    ``app_key``. Secrets are named by variable, never given."""

    model_config = ConfigDict(extra="forbid")

    app_key: str
    connector: Identifier = Field(max_length=64)
    api_key_env: str | None = None
    webhook_secret_env: str | None = None
    api_base: Identifier | None = Field(None, max_length=2000)
    resources: list[Annotated[Identifier, Field(max_length=64)]] | None = Field(
        None, description="Resource types; default all."
    )
    schedule: str | None = Field(None, description="5-field cron (UTC) of its periodic sync.")
    mode: SyncMode = Field("incremental", description="The schedule's mode.")
    sync_from: date | None = Field(None, description="Only objects created on or after it.")

    @field_validator("app_key")
    @classmethod
    def _app_key(cls, value: str) -> str:
        if not APP_KEY.fullmatch(value):
            raise ValueError("must match ^[A-Za-z0-9_-]{1,64}$")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_cron(value) if value else None

    @field_validator("api_key_env", "webhook_secret_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        return check_env_name(value)

    @model_validator(mode="after")
    def _known(self) -> Self:
        spec = CONNECTORS.get(self.connector)
        if spec is None:
            raise ValueError(
                f"connector: unknown connector '{self.connector}' (known: {', '.join(CONNECTORS)})"
            )
        unknown = [r for r in self.resources or () if spec.resource(r) is None]
        if unknown:
            raise ValueError(
                f"resources: unknown resource type(s) {', '.join(unknown)} for {spec.name} "
                f"(known: {', '.join(spec.resource_types)})"
            )
        for setting in ("api_key_env", "webhook_secret_env"):
            name = getattr(self, setting)
            if name is not None and not own_secret(spec.name, name):
                prefix = secret_prefix(spec.name)
                raise ValueError(f"{setting}: must name a variable starting with {prefix}")
        if self.api_base is not None:
            parts = urlsplit(self.api_base)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"api_base: '{self.api_base}' is not an http(s) URL")
        return self

    def resolved(self) -> dict[str, Any]:
        """The stored form: every default filled in."""
        spec = CONNECTORS[self.connector]
        suffix = self.app_key.upper().replace("-", "_")
        return {
            "app_key": self.app_key,
            "connector": self.connector,
            "api_key_env": self.api_key_env or f"{spec.api_key_env_prefix}{suffix}",
            "webhook_secret_env": self.webhook_secret_env
            or f"{spec.webhook_secret_env_prefix}{suffix}",
            "api_base": (self.api_base or spec.default_api_base).rstrip("/"),
            "resources": list(self.resources or spec.resource_types),
            "schedule": self.schedule,
            "mode": self.mode,
            "sync_from": self.sync_from,
        }


def secret_prefix(connector: str) -> str:
    """How the variables an app of ``connector`` reads its secrets from must begin."""
    return f"{connector.upper()}_"


def own_secret(connector: str, variable: str) -> bool:
    """Whether an app of ``connector`` may read ``variable``: only its connector's secrets,
    never the service's own (DATABASE_URL sent to an api_base of an admin's choosing)."""
    return variable.startswith(secret_prefix(connector))


def check_env_name(value: str | None) -> str | None:
    """An environment variable's name (letters, digits, underscores)."""
    if value is not None and not ENV_NAME.fullmatch(value):
        raise ValueError("must be an environment variable's name ([A-Za-z_][A-Za-z0-9_]*)")
    return value


def missing_secrets(app: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    """The secret variables ``app`` names that this process's environment lacks."""
    env = os.environ if environ is None else environ
    names = (app["api_key_env"], app["webhook_secret_env"])
    return [name for name in names if not env.get(name, "").strip()]


class AppsFile(BaseModel):
    """``SYNCBUS_APPS_FILE``: ``apps: [...]``."""

    model_config = ConfigDict(extra="forbid")

    apps: list[AppConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        keys = [a.app_key for a in self.apps]
        doubled = sorted({k for k in keys if keys.count(k) > 1})
        if doubled:
            raise ValueError(f"app_key listed twice: {', '.join(doubled)}")
        return self


class AppUpdate(BaseModel):
    """``PATCH /v1/apps/{app_key}``."""

    model_config = ConfigDict(extra="forbid")

    _env_name = field_validator("api_key_env", "webhook_secret_env")(check_env_name)

    api_key_env: str | None = None
    webhook_secret_env: str | None = None
    api_base: Identifier | None = Field(None, max_length=2000)
    resources: list[Annotated[Identifier, Field(max_length=64)]] | None = None
    schedule: str | None = None
    mode: SyncMode | None = None
    sync_from: date | None = None


class AppView(BaseModel):
    """An app instance as ``/v1/apps`` shows it (secret variable names, never values)."""

    app_key: str
    connector: str
    api_key_env: str
    webhook_secret_env: str
    api_base: str
    resources: list[str]
    schedule: str | None
    mode: SyncMode
    sync_from: date | None
    origin: Literal["config", "api"]


class AppList(BaseModel):
    items: list[AppView]
