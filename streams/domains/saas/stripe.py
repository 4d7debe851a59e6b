"""The Stripe connector: lists with ``limit=100``, incremental through the Events API.

Archive rules (as supasaasy's): inactive products, prices and plans and canceled
subscriptions get ``archived_at``. It is taken from the object itself (a subscription's
``canceled_at``; otherwise its ``updated`` or ``created``), never from the clock, so a row
that did not change is not rewritten by the next sync.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from schemas.saas import STRIPE, ResourceSpec
from streams.domains.saas.connector import (
    CLOCK_MARGIN_S,
    Change,
    Connector,
    Entity,
    IncrementalUnavailable,
    Listing,
)
from streams.sources.paginators import CursorPaginator, PageRequest, pages

PAGE_SIZE = 100
# The API version we ask for (supasaasy's DEFAULT_API_VERSION) and store with listed
# objects; an event's object is rendered in the event's own ``api_version``.
API_VERSION = "2025-02-24.acacia"
EVENT_RETENTION_S = 30 * 86400  # "List events, going back up to 30 days."
LIST_PATHS = {
    "customer": "/v1/customers",
    "product": "/v1/products",
    "price": "/v1/prices",
    "plan": "/v1/plans",
    "subscription": "/v1/subscriptions",
}


def _when(seconds: object) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if isinstance(seconds, int) else None


class StripeConnector(Connector):
    spec = STRIPE

    def _request(self, path: str, params: Sequence[tuple[str, str | int]]) -> PageRequest:
        headers = {"Authorization": f"Bearer {self.api_key}", "Stripe-Version": API_VERSION}
        return PageRequest(f"{self.api_base}{path}", tuple(params), headers)

    def listing(self, resource: ResourceSpec, created_from: int | None) -> Listing:
        params: list[tuple[str, str | int]] = [("limit", PAGE_SIZE)]
        if resource.resource_type == "subscription":
            params.append(("status", "all"))  # canceled ones too: they are archived
        if created_from is not None:
            params.append(("created[gte]", created_from))
        return Listing(
            self._request(LIST_PATHS[resource.resource_type], params),
            CursorPaginator,
            created_param="created",
        )

    def normalise(self, resource: ResourceSpec, obj: dict[str, Any]) -> Entity:
        kind = resource.resource_type
        archived: datetime | None = None
        if kind == "subscription" and obj.get("status") == "canceled":
            archived = _when(obj.get("canceled_at")) or _when(obj.get("created"))
        elif kind in ("product", "price", "plan") and obj.get("active") is False:
            archived = _when(obj.get("updated")) or _when(obj.get("created"))
        created = obj.get("created")
        return Entity(
            resource,
            str(obj["id"]),
            obj,
            created if isinstance(created, int) else None,
            archived,
            API_VERSION,
        )

    def children(self, resource: ResourceSpec, obj: dict[str, Any]) -> Iterable[Entity]:
        if resource.resource_type != "subscription":
            return ()
        item = STRIPE.resource("subscription_item")
        assert item is not None
        listed = (obj.get("items") or {}).get("data") or []
        return [self.normalise(item, {"subscription": obj["id"], **i}) for i in listed]

    def has_more_children(self, obj: dict[str, Any]) -> bool:
        return bool((obj.get("items") or {}).get("has_more"))

    async def more_children(
        self, resource: ResourceSpec, obj: dict[str, Any]
    ) -> AsyncIterator[Sequence[Entity]]:
        if resource.resource_type != "subscription" or not self.has_more_children(obj):
            return
        item = STRIPE.resource("subscription_item")
        assert item is not None
        first = self._request(
            "/v1/subscription_items", [("subscription", obj["id"]), ("limit", PAGE_SIZE)]
        )
        label = f"subscription items of {obj['id']}"
        async for listed in pages(self.client, first, CursorPaginator(), label=label):
            yield [self.normalise(item, {"subscription": obj["id"], **i}) for i in listed]

    async def changes(
        self, resources: Sequence[ResourceSpec], since: int
    ) -> AsyncIterator[list[Change]]:
        oldest = int(time.time()) - EVENT_RETENTION_S
        if since < oldest:
            raise IncrementalUnavailable(
                f"the cursor ({datetime.fromtimestamp(since, UTC):%Y-%m-%d %H:%M}Z) is older "
                "than Stripe's 30-day event window"
            )
        wanted = {r.resource_type for r in resources}
        types = [t for t, (kind, _) in STRIPE.events.items() if kind in wanted]
        if not types:
            return
        # From a minute before the cursor: our clock and Stripe's may differ, and an event
        # seen twice changes nothing the second time (its object's state is the same).
        start = max(0, since - CLOCK_MARGIN_S)
        params: list[tuple[str, str | int]] = [("limit", PAGE_SIZE), ("created[gte]", start)]
        params += [("types[]", t) for t in types]
        first = self._request("/v1/events", params)
        async for events in pages(self.client, first, CursorPaginator(), label="events"):
            yield [c for c in (self.change_of(e) for e in events) if c is not None]

    def change_of(self, event: dict[str, Any]) -> Change | None:
        handled = STRIPE.events.get(str(event.get("type")))
        obj = (event.get("data") or {}).get("object")
        if handled is None or not isinstance(obj, dict) or "id" not in obj:
            return None
        resource_type, action = handled
        resource = STRIPE.resource(resource_type)
        assert resource is not None
        created = event.get("created")
        occurred = created if isinstance(created, int) else 0
        if action == "delete":
            return Change(str(event["id"]), occurred, resource, str(obj["id"]), None)
        entity = self.normalise(resource, obj)
        version = event.get("api_version")
        if isinstance(version, str) and version != entity.api_version:
            entity = replace(entity, api_version=version)
        kids = None
        if resource_type == "subscription" and not self.has_more_children(obj):
            kids = tuple(self.children(resource, obj))
        return Change(str(event["id"]), occurred, resource, entity.external_id, entity, kids)
