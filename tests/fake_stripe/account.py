"""One Stripe account's data: objects, subscription items, events, and the controls on them."""

from __future__ import annotations

import copy
import random
import threading
from collections.abc import Callable
from typing import Any

from tests.fake_stripe import objects
from tests.fake_stripe.objects import KINDS, Kind, Obj
from tests.fake_stripe.store import Collection

DEFAULT_API_VERSION = "2025-02-24.acacia"
EVENT_PREFIX: dict[Kind, str] = {
    "customer": "customer",
    "product": "product",
    "price": "price",
    "plan": "plan",
    "subscription": "customer.subscription",
}
ENDED = ("canceled", "incomplete_expired")
_FIXED = frozenset({"id", "object", "created"})
_FIXED_BY_KIND: dict[Kind, frozenset[str]] = {  # change items through subscription_item controls
    "subscription": frozenset({"items"}),
    "subscription_item": frozenset({"subscription"}),
}


class StripeAccount:
    """The objects one set of API keys sees. Every public method is thread-safe.

    Objects are stored immutably (a change stores a new dict), so an event's ``data.object`` is
    the object's state when the event happened. Methods return deep copies.
    """

    def __init__(
        self,
        clock: Callable[[], int],
        *,
        seed_fixtures: bool = True,
        random_seed: int = 0,
        api_version: str = DEFAULT_API_VERSION,
    ) -> None:
        self.api_version = api_version
        self.lock = threading.Lock()
        self.collections: dict[Kind, Collection] = {kind: Collection() for kind in KINDS}
        self.events = Collection()
        self.items_of: dict[str, list[str]] = {}  # subscription id -> item ids, in order added
        self.deleted_customers: dict[str, Obj] = {}
        self._clock = clock
        self._rng = random.Random(random_seed)
        self._event_seq = 0
        if seed_fixtures:
            for kind, seeded in objects.seed_objects().items():
                self.collections[kind].add_many(seeded)
            for item in self.collections["subscription_item"].objects.values():
                self.items_of.setdefault(item["subscription"], []).append(item["id"])

    @property
    def now(self) -> int:
        return self._clock()

    # --- reading -----------------------------------------------------------------------------

    def get(self, kind: Kind, id: str) -> Obj | None:
        """A copy of the object, or None when there is none (deleted customers included)."""
        with self.lock:
            obj = self.collections[kind].objects.get(id)
            return copy.deepcopy(obj)

    def ids(self, kind: Kind) -> list[str]:
        """Every id of ``kind``, newest first, as the list endpoint orders them."""
        with self.lock:
            return [id for _, id in reversed(self.collections[kind].keys)]

    def object_count(self, kind: Kind) -> int:
        with self.lock:
            return len(self.collections[kind])

    def recorded_events(self, type: str | None = None) -> list[Obj]:
        """Copies of every recorded event (also those older than 30 days), newest first."""
        with self.lock:
            found = self.events.newest_first()
            return copy.deepcopy([e for e in found if type is None or e["type"] == type])

    # --- controls ------------------------------------------------------------------------------

    def create(self, kind: Kind, obj: Obj | None = None, **fields: Any) -> Obj:
        """Store a new object (defaults from the fixtures, ``created`` = now) and record
        ``<kind>.created``; a subscription takes ``items=[{"price": id, "quantity": n}]``,
        a subscription item records ``customer.subscription.updated`` on its subscription."""
        given = copy.deepcopy({**(obj or {}), **fields})
        with self.lock:
            if given.get("id") in self.collections[kind].objects:
                raise ValueError(f"{kind} {given['id']} exists already")
            if kind == "subscription":
                made = self._create_subscription(given)
            elif kind == "subscription_item":
                made = self._create_item(given)
            else:
                id = given.pop("id", None) or self._fresh_id(kind)
                created = int(given.pop("created", self.now))
                made = {**self._build(kind, id, created), **given}
                self.collections[kind].add(made)
                self._record(f"{EVENT_PREFIX[kind]}.created", made)
            return copy.deepcopy(made)

    def update(self, kind: Kind, id: str, **fields: Any) -> Obj:
        """Change top-level fields and record ``<kind>.updated`` with ``previous_attributes``
        (nothing recorded when nothing changed). Setting a subscription's ``status`` to
        ``canceled`` cancels it and records ``customer.subscription.deleted``."""
        fixed = _FIXED | _FIXED_BY_KIND.get(kind, frozenset())
        if fixed & fields.keys():
            raise ValueError(f"cannot update {sorted(fixed & fields.keys())} of a {kind}")
        changes = copy.deepcopy(fields)
        with self.lock:
            collection = self.collections[kind]
            old = collection.objects[id]
            previous = {k: old.get(k) for k, v in changes.items() if old.get(k) != v}
            if not previous:
                return copy.deepcopy(old)
            if kind == "product":
                previous.setdefault("updated", old.get("updated"))
                changes.setdefault("updated", self.now)
            canceling = (
                kind == "subscription"
                and changes.get("status") == "canceled"
                and old["status"] != "canceled"
            )
            if canceling:
                changes.setdefault("canceled_at", self.now)
                changes.setdefault("ended_at", self.now)
            new = {**old, **changes}
            collection.replace(new)
            if kind == "subscription_item":
                self._refresh_items(new["subscription"])
            elif canceling:
                self._record("customer.subscription.deleted", new)
            else:
                self._record(f"{EVENT_PREFIX[kind]}.updated", new, previous)
            return copy.deepcopy(new)

    def delete(self, kind: Kind, id: str) -> Obj:
        """Delete as Stripe does; returns what the API's DELETE would answer.

        A customer: its live subscriptions are canceled first, then it is removed and
        ``customer.deleted`` carries its last full state. A subscription is canceled (kept, with
        ``status: canceled``, ``canceled_at``, ``ended_at``; ``customer.subscription.deleted``).
        A subscription item is removed and its subscription records an update. Others are
        removed with ``<kind>.deleted``.
        """
        with self.lock:
            if kind == "subscription":
                return copy.deepcopy(self._cancel(id))
            collection = self.collections[kind]
            if id not in collection.objects:
                raise KeyError(id)
            if kind == "customer":
                for sub in list(self.collections["subscription"].objects.values()):
                    if sub["customer"] == id and sub["status"] not in ENDED:
                        self._cancel(sub["id"])
            last = collection.remove(id)
            stub = {"id": id, "object": last.get("object", kind), "deleted": True}
            if kind == "subscription_item":
                self.items_of[last["subscription"]].remove(id)
                self._refresh_items(last["subscription"])
            else:
                self._record(f"{EVENT_PREFIX[kind]}.deleted", last)
            if kind == "customer":
                self.deleted_customers[id] = stub
            return dict(stub)

    def record_event(
        self,
        type: str,
        obj: Obj,
        previous_attributes: Obj | None = None,
        created: int | None = None,
    ) -> Obj:
        """Record any event (e.g. ``customer.subscription.paused``) without changing data."""
        with self.lock:
            return copy.deepcopy(
                self._record(type, copy.deepcopy(obj), previous_attributes, created)
            )

    def generate(
        self,
        kind: Kind,
        n: int,
        *,
        start: int | None = None,
        spacing: float = 1.0,
        items_per_subscription: int = 1,
        record_events: bool = False,
        **fields: Any,
    ) -> list[str]:
        """Add ``n`` realistic objects with fresh ids, ``created`` = start + i*spacing (default:
        ending just before now; spacing < 1 gives same-second ties). Subscriptions pick random
        existing customers and prices. ``fields`` override every object. Returns ids, oldest first.
        """
        extra = copy.deepcopy(fields)
        with self.lock:
            first = start if start is not None else self.now - int(n * spacing) - 1
            collection = self.collections[kind]
            seen: set[str] = set()
            made: list[Obj] = []
            for i in range(n):
                id = self._fresh_id(kind, seen)
                created = first + int(i * spacing)
                if kind == "subscription":
                    obj = self._new_subscription(id, created, items_per_subscription, extra)
                else:
                    obj = self._build(kind, id, created)
                made.append({**obj, **extra} if extra else obj)
            collection.add_many(made)
            if record_events and kind in EVENT_PREFIX:
                events = [
                    self._event(f"{EVENT_PREFIX[kind]}.created", o, o["created"]) for o in made
                ]
                self.events.add_many(events)
            return [obj["id"] for obj in made]

    # --- internals (called with the lock held) -------------------------------------------------

    def _fresh_id(self, kind: Kind, seen: set[str] | None = None) -> str:
        taken = self.collections[kind].objects
        while True:
            id = objects.new_id(self._rng, kind)
            if id not in taken and (seen is None or id not in seen):
                if seen is not None:
                    seen.add(id)
                return id

    def _any(self, kind: Kind) -> Obj | None:
        collection = self.collections[kind]
        if not collection.keys:
            return None
        return collection.objects[self._rng.choice(collection.keys)[1]]

    def _any_id(self, kind: Kind, fallback: str) -> str:
        found = self._any(kind)
        return fallback if found is None else str(found["id"])

    def _build(self, kind: Kind, id: str, created: int) -> Obj:
        seq = len(self.collections[kind]) + 1
        if kind == "customer":
            return objects.customer(self._rng, id, created, seq)
        if kind == "product":
            return objects.product(self._rng, id, created, seq)
        product_id = self._any_id("product", "prod_QXg1hqf4jFNsqG")
        if kind == "price":
            return objects.price(self._rng, id, created, product_id)
        if kind == "plan":
            return objects.plan(self._rng, id, created, product_id)
        raise ValueError(f"build {kind} through create() or generate()")

    def _price(self, price: Any = None) -> Obj:
        if isinstance(price, dict):
            return price
        if isinstance(price, str):
            return self.collections["price"].objects[price]
        return self._any("price") or objects.load_fixture("price")

    def _new_subscription(self, id: str, created: int, n_items: int, given: Obj) -> Obj:
        """A subscription and its items (stored here); ``given`` may name customer and status."""
        items = [
            objects.subscription_item(
                self._fresh_id("subscription_item"), created, id, self._price()
            )
            for _ in range(n_items)
        ]
        return self._store_subscription(id, created, items, given)

    def _store_subscription(self, id: str, created: int, items: list[Obj], given: Obj) -> Obj:
        self.collections["subscription_item"].add_many(items)
        self.items_of[id] = [item["id"] for item in items]
        customer = given.get("customer") or self._any_id("customer", "cus_QXg1o8vcGmoR32")
        status = given.get("status", "active")
        sub = objects.subscription(id, created, customer, items, status)
        if status in ENDED:
            ended = min(created + objects.MONTH_S, max(self.now, created))
            sub = {**sub, "ended_at": ended, "canceled_at": ended if status == "canceled" else None}
        return sub

    def _create_subscription(self, given: Obj) -> Obj:
        id = given.pop("id", None) or self._fresh_id("subscription")
        created = int(given.pop("created", self.now))
        specs = given.pop("items", None) or [{}]
        items = [
            {
                **objects.subscription_item(
                    self._fresh_id("subscription_item"), created, id, self._price(spec.get("price"))
                ),
                **{k: v for k, v in spec.items() if k != "price"},
            }
            for spec in specs
        ]
        sub = {**self._store_subscription(id, created, items, given), **given}
        self.collections["subscription"].add(sub)
        self._record("customer.subscription.created", sub)
        return sub

    def _create_item(self, given: Obj) -> Obj:
        sub_id = given["subscription"]
        if sub_id not in self.collections["subscription"].objects:
            raise KeyError(sub_id)
        id = given.pop("id", None) or self._fresh_id("subscription_item")
        created = int(given.pop("created", self.now))
        item = objects.subscription_item(id, created, sub_id, self._price(given.pop("price", None)))
        item = {**item, **given}
        self.collections["subscription_item"].add(item)
        self.items_of[sub_id].append(id)
        self._refresh_items(sub_id)
        return item

    def _refresh_items(self, sub_id: str) -> None:
        """Re-embed a subscription's items and record ``customer.subscription.updated``."""
        subs, items = self.collections["subscription"], self.collections["subscription_item"]
        old = subs.objects[sub_id]
        data = [items.objects[i] for i in self.items_of[sub_id]]
        new = {**old, "items": objects.items_list(sub_id, data)}
        subs.replace(new)
        self._record("customer.subscription.updated", new, {"items": old["items"]})

    def _cancel(self, id: str) -> Obj:
        subs = self.collections["subscription"]
        old = subs.objects[id]
        if old["status"] == "canceled":
            raise ValueError(f"subscription {id} is canceled already")
        now = self.now
        new = {**old, "status": "canceled", "canceled_at": now, "ended_at": now, "cancel_at": None}
        subs.replace(new)
        self._record("customer.subscription.deleted", new)
        return new

    def _event(
        self, type: str, obj: Obj, created: int | None = None, previous: Obj | None = None
    ) -> Obj:
        when = self.now if created is None else created
        self._event_seq += 1
        id = objects.event_id(self._rng, self._event_seq)
        return objects.event(self._rng, id, type, obj, when, self.api_version, previous)

    def _record(
        self, type: str, obj: Obj, previous: Obj | None = None, created: int | None = None
    ) -> Obj:
        event = self._event(type, obj, created, previous)
        self.events.add(event)
        return event
