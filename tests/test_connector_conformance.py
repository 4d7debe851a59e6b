"""What every SaaS connector must do, checked against a local fake of its API.

A connector is registered in ``CONFORMING`` with a factory for its fake server (holding a
few objects of every resource and its change feed); every check here then runs for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import pytest

from schemas.saas import CONNECTORS
from streams.domains.saas.connector import Connector, Entity
from streams.domains.saas.fetch import listed_pages
from streams.domains.saas.plan import CLASSIFIERS, CONNECTOR_CLASSES
from streams.sources.http import SourceClient
from streams.sources.paginators import Paginator
from streams.sources.retry import RetryPolicy
from tests.fake_stripe import FakeStripe


class FakeApi(Protocol):
    base_url: str
    api_key: str

    def ids(self, kind: Any) -> list[str]: ...


@dataclass(frozen=True)
class Conformance:
    """A connector and how to stand up its fake with every resource and some changes."""

    name: str
    fake: Callable[[], AbstractContextManager[Any]]
    make_changes: Callable[[FakeApi], int]  # changes the fake, returns how many objects


def _stripe_fake() -> AbstractContextManager[Any]:
    fake = FakeStripe()
    fake.generate("customer", 120, spacing=200.0)
    fake.generate("subscription", 5, items_per_subscription=12)
    return fake


def _stripe_changes(fake: Any) -> int:
    customers = fake.ids("customer")
    fake.update("customer", customers[0], name="Changed")
    fake.delete("customer", customers[1])  # also cancels its live subscriptions
    fake.create("product", name="New")
    return 3


CONFORMING = [Conformance("stripe", _stripe_fake, _stripe_changes)]


def test_every_connector_is_registered_here() -> None:
    assert {c.name for c in CONFORMING} == set(CONNECTORS) == set(CONNECTOR_CLASSES)
    assert set(CLASSIFIERS) <= set(CONNECTORS)


@pytest.fixture(params=CONFORMING, ids=lambda c: c.name)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[Conformance, FakeApi]]:
    conformance: Conformance = request.param
    with conformance.fake() as fake:
        yield conformance, fake


def connector_for(name: str, fake: FakeApi, http: httpx.AsyncClient) -> Connector:
    client = SourceClient(
        http, timeout_s=10, retry=RetryPolicy(attempts=2, backoff_s=0.01), secrets=(fake.api_key,)
    )
    return CONNECTOR_CLASSES[name](client, fake.base_url, fake.api_key)


def test_the_declaration_is_consistent(served: tuple[Conformance, FakeApi]) -> None:
    spec = CONNECTORS[served[0].name]
    keys = [r.collection_key for r in spec.resources]
    assert len(keys) == len(set(keys)), "one collection per resource"
    types = set(spec.resource_types)
    for resource in spec.resources:
        if resource.parent is not None:
            assert resource.parent in types and resource.parent_field, resource
    for event, (resource_type, action) in spec.events.items():
        assert resource_type in types and action in ("upsert", "delete"), event


def test_listing_reads_every_object_once_whatever_the_slicing(
    served: tuple[Conformance, FakeApi],
) -> None:
    conformance, fake = served
    spec = CONNECTORS[conformance.name]

    async def walk(chains: int) -> dict[str, list[str]]:
        async with httpx.AsyncClient() as http:
            connector = connector_for(conformance.name, fake, http)
            seen: dict[str, list[str]] = {}
            for resource in spec.resources:
                if resource.parent is not None:
                    continue
                listing = connector.listing(resource, None)
                assert isinstance(listing.paginator(), Paginator)
                label = resource.collection_key
                async for items in listed_pages(
                    connector.client, listing, label=label, lo=None, chains=chains
                ):
                    for obj in items:
                        entity = connector.normalise(resource, obj)
                        assert isinstance(entity, Entity) and entity.external_id
                        assert isinstance(entity.payload, dict)
                        seen.setdefault(resource.resource_type, []).append(entity.external_id)
                        kids = list(connector.children(resource, obj))
                        async for more in connector.more_children(resource, obj):
                            kids.extend(more)
                        for kid in kids:
                            assert kid.resource.parent == resource.resource_type
                            assert kid.payload[str(kid.resource.parent_field)] == obj["id"]
                            seen.setdefault(kid.resource.resource_type, []).append(kid.external_id)
            return seen

    for chains in (1, 4):
        seen = asyncio.run(walk(chains))
        for resource in spec.resources:
            ids = seen.get(resource.resource_type, [])
            assert sorted(set(ids)) == sorted(fake.ids(resource.resource_type)), (
                resource.resource_type,
                chains,
            )
            if resource.parent is None:
                assert len(ids) == len(set(ids)), "each object once"


def test_the_change_feed_sees_updates_and_deletions(served: tuple[Conformance, FakeApi]) -> None:
    conformance, fake = served
    spec = CONNECTORS[conformance.name]

    async def feed() -> list[Any]:
        async with httpx.AsyncClient() as http:
            connector = connector_for(conformance.name, fake, http)
            changes: list[Any] = []
            since = int(time.time()) - 86400  # within every feed's retention
            async for page in connector.changes(spec.resources, since=since):
                changes.extend(page)
            return changes

    before = {c.event_id for c in asyncio.run(feed())}  # what seeding the fake recorded
    changed = conformance.make_changes(fake)
    fresh = [c for c in asyncio.run(feed()) if c.event_id not in before]
    assert len({(c.resource.collection_key, c.external_id) for c in fresh}) >= changed
    assert any(c.entity is None for c in fresh), "a deletion"
    assert any(c.entity is not None for c in fresh), "an update"


def test_an_event_it_does_not_handle_is_none(served: tuple[Conformance, FakeApi]) -> None:
    conformance, fake = served

    async def check() -> None:
        async with httpx.AsyncClient() as http:
            connector = connector_for(conformance.name, fake, http)
            assert connector.change_of({"id": "evt_x", "type": "no.such.event"}) is None
            assert connector.change_of({"id": "evt_x"}) is None

    asyncio.run(check())
