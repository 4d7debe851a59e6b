"""Stripe objects for the fake: the fixtures, fresh ids, and realistic objects built from them."""

from __future__ import annotations

import json
import random
import string
from functools import cache
from pathlib import Path
from typing import Any, Literal

Obj = dict[str, Any]
Kind = Literal["customer", "product", "price", "plan", "subscription", "subscription_item"]
KINDS: tuple[Kind, ...] = (
    "customer",
    "product",
    "price",
    "plan",
    "subscription",
    "subscription_item",
)
FIXTURES = Path(__file__).parent.parent / "fixtures" / "stripe"
BASE62 = string.digits + string.ascii_letters
SORTABLE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase  # in ASCII order
# Prefix and random length of ids as in the fixtures (plans made from prices share price_).
ID_SHAPES: dict[str, tuple[str, int]] = {
    "customer": ("cus_", 14),
    "product": ("prod_", 14),
    "price": ("price_", 24),
    "plan": ("price_", 24),
    "subscription": ("sub_", 24),
    "subscription_item": ("si_", 14),
    "request": ("req_", 14),
}
EMBEDDED_ITEMS = 10  # how many items a subscription embeds before ``has_more`` [unverified]
MONTH_S = 30 * 86400
_FIRST = ("Jenny", "Ada", "Lin", "Omar", "Priya", "Jonas", "Mia", "Kenji", "Sofia", "Tariq")
_LAST = ("Rosen", "Lovelace", "Chen", "Haddad", "Rao", "Berg", "Novak", "Sato", "Costa", "Aziz")
_CITIES = (("Berlin", "DE", "10119"), ("Paris", "FR", "75002"), ("Austin", "US", "78701"))
_AMOUNTS = (500, 900, 1500, 2000, 4900, 9900)


def load_fixture(name: str) -> Obj:
    """One fixture file of ``tests/fixtures/stripe`` as parsed JSON."""
    document: Obj = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return document


@cache
def _template(name: str) -> Obj:
    return load_fixture(name)


def new_id(rng: random.Random, kind: str) -> str:
    prefix, length = ID_SHAPES[kind]
    return prefix + "".join(rng.choices(BASE62, k=length))


def event_id(rng: random.Random, seq: int) -> str:
    """``evt_1`` + a 7-digit sortable counter + random: later events of one second sort higher,
    like Stripe's time-prefixed ids, so same-second events list in the order they happened."""
    digits = []
    for _ in range(7):
        seq, digit = divmod(seq, 62)
        digits.append(SORTABLE62[digit])
    return "evt_1" + "".join(reversed(digits)) + "".join(rng.choices(BASE62, k=16))


def seed_objects() -> dict[Kind, list[Obj]]:
    """The fixtures as served by default: the subscription's embedded item is the one item."""
    subscription = load_fixture("subscription")
    return {
        "customer": [load_fixture("customer")],
        "product": [load_fixture("product")],
        "price": [load_fixture("price")],
        "plan": [load_fixture("plan")],
        "subscription": [subscription],
        "subscription_item": list(subscription["items"]["data"]),
    }


def customer(rng: random.Random, id: str, created: int, seq: int) -> Obj:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    address = None
    if rng.random() < 0.3:
        city, country, postal = rng.choice(_CITIES)
        address = {
            "city": city,
            "country": country,
            "line1": f"{seq % 200 + 1} Main Street",
            "line2": None,
            "postal_code": postal,
            "state": None,
        }
    return {
        **_template("customer"),
        "id": id,
        "created": created,
        "address": address,
        "currency": rng.choice(("usd", "eur", None)),
        "discount": None,
        "email": f"{first}.{last}.{seq}@example.com".lower(),
        "invoice_prefix": f"{rng.getrandbits(32):08X}",
        "metadata": {"seq": str(seq)},
        "name": f"{first} {last}",
        "shipping": None,
    }


def product(rng: random.Random, id: str, created: int, seq: int) -> Obj:
    return {
        **_template("product"),
        "id": id,
        "created": created,
        "updated": created,
        "default_price": None,
        "description": f"Plan number {seq}",
        "name": f"Product {seq}",
        "package_dimensions": None,
        "type": "service",
    }


def price(rng: random.Random, id: str, created: int, product_id: str) -> Obj:
    interval = rng.choice(("month", "year"))
    amount = rng.choice(_AMOUNTS) * (10 if interval == "year" else 1)
    return {
        **_template("price"),
        "id": id,
        "created": created,
        "currency": rng.choice(("usd", "eur")),
        "custom_unit_amount": None,
        "product": product_id,
        "recurring": {**_template("price")["recurring"], "interval": interval},
        "transform_quantity": None,
        "unit_amount": amount,
        "unit_amount_decimal": str(amount),
    }


def plan(rng: random.Random, id: str, created: int, product_id: str) -> Obj:
    amount = rng.choice(_AMOUNTS)
    return {
        **_template("plan"),
        "id": id,
        "created": created,
        "amount": amount,
        "amount_decimal": str(amount),
        "interval": rng.choice(("month", "year")),
        "product": product_id,
        "transform_usage": None,
    }


def plan_of_price(price: Obj) -> Obj:
    """The legacy ``plan`` view Stripe embeds next to a recurring price in an item."""
    recurring = price.get("recurring") or {}
    return {
        "active": price["active"],
        "amount": price.get("unit_amount"),
        "amount_decimal": price.get("unit_amount_decimal"),
        "billing_scheme": price.get("billing_scheme"),
        "created": price["created"],
        "currency": price.get("currency"),
        "id": price["id"],
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count"),
        "livemode": price.get("livemode", False),
        "metadata": price.get("metadata", {}),
        "meter": recurring.get("meter"),
        "nickname": price.get("nickname"),
        "object": "plan",
        "product": price.get("product"),
        "tiers_mode": price.get("tiers_mode"),
        "transform_usage": None,
        "trial_period_days": recurring.get("trial_period_days"),
        "usage_type": recurring.get("usage_type", "licensed"),
    }


def subscription_item(id: str, created: int, subscription_id: str, price: Obj) -> Obj:
    return {
        **_template("subscription_item"),
        "id": id,
        "created": created,
        "subscription": subscription_id,
        "price": price,
        "plan": plan_of_price(price),
        "quantity": 1,
        "current_period_start": created,
        "current_period_end": created + MONTH_S,
        "billing_thresholds": None,
    }


def items_list(subscription_id: str, items: list[Obj]) -> Obj:
    """A subscription's embedded ``items``: its first items in the order they were added."""
    return {
        "object": "list",
        "data": items[:EMBEDDED_ITEMS],
        "has_more": len(items) > EMBEDDED_ITEMS,
        "url": f"/v1/subscription_items?subscription={subscription_id}",
    }


def subscription(
    id: str, created: int, customer_id: str, items: list[Obj], status: str = "active"
) -> Obj:
    """A subscription from the fixture's shape, with its cancellation and trial fields cleared."""
    ended = created + MONTH_S if status in ("canceled", "incomplete_expired") else None
    return {
        **_template("subscription"),
        "id": id,
        "created": created,
        "billing_cycle_anchor": created,
        "billing_cycle_anchor_config": None,
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": ended if status == "canceled" else None,
        "currency": items[0]["price"].get("currency", "usd") if items else "usd",
        "customer": customer_id,
        "ended_at": ended,
        "items": items_list(id, items),
        "next_pending_invoice_item_invoice": None,
        "pause_collection": None,
        "pending_invoice_item_interval": None,
        "pending_update": None,
        "start_date": created,
        "status": status,
        "transfer_data": None,
        "trial_end": None,
        "trial_start": None,
    }


def event(
    rng: random.Random,
    id: str,
    type: str,
    obj: Obj,
    created: int,
    api_version: str,
    previous_attributes: Obj | None = None,
) -> Obj:
    data: Obj = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": id,
        "object": "event",
        "api_version": api_version,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": new_id(rng, "request"), "idempotency_key": None},
        "type": type,
    }
