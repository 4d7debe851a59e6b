"""What a SaaS connector is: its resources' listings, a normaliser, and a change feed.

A connector declares, per resource, where its objects are listed and how pages follow
(:class:`Listing`), and turns each object into an :class:`Entity`. The framework
(``streams.domains.saas.fetch`` and ``handler``) gives it pagination, retries, the
account's rate limit, parallel slices, progress events, merging and state. A connector
that has a change feed (Stripe's Events API) implements :meth:`Connector.changes` for
incremental syncs; without one, an incremental sync of it runs in full.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.saas import ConnectorSpec, ResourceSpec
from streams.sources.http import SourceClient
from streams.sources.paginators import PageRequest, Paginator

# How far a source's clock may lag ours: a change feed is read from a cursor less this, and
# a change is stale only if older than its collection's cursor less this.
CLOCK_MARGIN_S = 60


@dataclass(frozen=True)
class Entity:
    """One external object as ``supasaasy.entities`` stores it."""

    resource: ResourceSpec
    external_id: str
    payload: dict[str, Any]
    created: int | None = None  # unix seconds, for ``sync_from``
    archived_at: datetime | None = None
    api_version: str | None = None


@dataclass(frozen=True)
class Change:
    """One entry of a change feed: the entity's state after it, or its deletion."""

    event_id: str
    occurred: int  # unix seconds
    resource: ResourceSpec
    external_id: str
    entity: Entity | None  # None: deleted
    children: tuple[Entity, ...] | None = None  # the parent's full set of children, if known


@dataclass(frozen=True)
class Listing:
    """Where a resource is listed: the first request, and a new paginator per walk. With
    ``created_param`` (a ``[gte]``/``[lt]`` range filter on the creation time, unix
    seconds) the framework may fetch it in parallel slices of that range."""

    first: PageRequest
    paginator: Callable[[], Paginator]
    created_param: str | None = None


class IncrementalUnavailable(Exception):
    """The change feed cannot serve this run (say, the cursor is older than its retention);
    the message says why, and the run falls back to a full sync."""


class Connector(ABC):
    """One SaaS API. ``client`` carries the account's credentials, retries and rate limit."""

    spec: ConnectorSpec

    def __init__(self, client: SourceClient, api_base: str, api_key: str) -> None:
        self.client = client
        self.api_base = api_base
        self.api_key = api_key

    @abstractmethod
    def listing(self, resource: ResourceSpec, created_from: int | None) -> Listing:
        """How to list ``resource`` (objects created at or after ``created_from``)."""

    @abstractmethod
    def normalise(self, resource: ResourceSpec, obj: dict[str, Any]) -> Entity:
        """The entity for one listed object."""

    def children(self, resource: ResourceSpec, obj: dict[str, Any]) -> Iterable[Entity]:
        """Entities synced with ``obj`` (its child resources), from the object itself."""
        return ()

    async def more_children(
        self, resource: ResourceSpec, obj: dict[str, Any]
    ) -> AsyncIterator[Sequence[Entity]]:
        """Children the object could not embed (a truncated list), fetched page by page."""
        return
        yield  # an async generator that yields nothing

    async def changes(
        self, resources: Sequence[ResourceSpec], since: int
    ) -> AsyncIterator[list[Change]]:
        """Pages of changes to ``resources`` after ``since`` (unix seconds), in any order:
        the framework applies them oldest first, each object's last state winning."""
        raise IncrementalUnavailable(f"{self.spec.name} has no change feed")
        yield  # pragma: no cover

    def change_of(self, event: dict[str, Any]) -> Change | None:
        """A pushed event (a webhook) as a change, None for a type it does not handle."""
        return None
